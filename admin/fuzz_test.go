package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"redis-proxy/proxy"
)

// FuzzCmd sends arbitrary methods, queries and bodies to /cmd/: the
// handler never panics, answers one of the codes doc/admin-api.md lists
// for /cmd/, and always with a JSON body.
func FuzzCmd(f *testing.F) {
	form := "application/x-www-form-urlencoded"
	f.Add("POST", "", form, "cmd=pause", "")
	f.Add("POST", "", form, "cmd=reload", "")
	f.Add("POST", "cmd=unpause", "", "", "")
	f.Add("POST", "", form, "cmd=terminate-raw-connections&cmd=pause", "")
	f.Add("POST", "", form, "cmd=%zz", "")
	f.Add("POST", "", form, "cmd=\xff\xfe", "")
	f.Add("POST", "", form, "cmd=reload-async", "http://evil.example")
	f.Add("POST", "", form, "cmd=pause-async", "http://admin.test")
	f.Add("POST", "", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"cmd\"\r\n\r\npause\r\n--x--\r\n", "")
	f.Add("POST", "", "multipart/form-data", "garbage", "")
	f.Add("POST", "", "text/plain", "cmd=pause", "")
	f.Add("POST", ";;;&&&==", form, "=&=&cmd", "null")
	f.Add("GET", "cmd=pause", "", "", "")
	f.Add("PUT", "", form, "cmd=pause", "")
	f.Add("PATCH", "", "", "", "")
	f.Fuzz(func(t *testing.T, method, query, ctype, body, origin string) {
		if !validMethod(method) {
			return // http.NewRequest refuses it; a server never sees it
		}
		fc := newFake()
		fc.errs["reload"] = &proxy.ConfigError{Err: errors.New("bad")}
		fc.errs["unpause"] = proxy.ErrState
		fc.errs["pause-async"] = errors.New("boom")
		r := httptest.NewRequest("GET", "http://admin.test/cmd/", strings.NewReader(body))
		r.Method = method
		r.URL.RawQuery = query
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		Handler(fc, nil).ServeHTTP(w, r)
		if !slices.Contains([]int{200, 400, 403, 405, 409, 500}, w.Code) {
			t.Fatalf("code %d", w.Code)
		}
		var m struct {
			OK    *bool  `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || m.OK == nil {
			t.Fatalf("body %q: %v", w.Body, err)
		}
		if *m.OK != (w.Code == 200) || (m.Error == "") != *m.OK {
			t.Fatalf("code %d with body %s", w.Code, w.Body)
		}
		if w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q", w.Header().Get("Content-Type"))
		}
		if calls := fc.Calls(); len(calls) > 1 || len(calls) == 1 && (method != "POST" || w.Code == 403) {
			t.Fatalf("calls %q for %s, code %d", calls, method, w.Code)
		}
	})
}

// validMethod is net/http's rule: a token.
func validMethod(m string) bool {
	_, err := http.NewRequest(m, "http://x/", nil)
	return m != "" && err == nil
}
