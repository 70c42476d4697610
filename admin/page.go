package admin

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sync"

	"redis-proxy/proxy"
)

//go:embed page.html
var pageHTML string

// pageTmpl parses page.html once; an error shows as a 500, not a panic.
var pageTmpl = sync.OnceValues(func() (*template.Template, error) {
	return template.New("page").Funcs(template.FuncMap{
		"dur": formatDuration,
		"ms":  formatMS,
	}).Parse(pageHTML)
})

type pageData struct {
	Nonce    string
	S        proxy.Status
	Config   string // indented JSON, sanitized
	Commands []pageCommand
	// SwitchConfirm is the confirmation of the switch form, after
	// "Switch to HOST:PORT?".
	SwitchConfirm string
}

type pageCommand struct {
	Name, Label, Confirm string
	Danger               bool
}

var pageCommands = []pageCommand{
	{"pause", "Pause", "Pause the proxy?\n\nCommands in flight finish; new commands wait until unpause.", false},
	{"pause-async", "Pause (async)", "Start a pause and return at once?", false},
	{"unpause", "Unpause", "Unpause the proxy?\n\nWaiting commands go on, in order.", false},
	{"reload", "Reload", "Reload the configuration file?\n\nThe new uplink is proven first, then every client moves to it.", false},
	{"reload-async", "Reload (async)", "Start a reload of the configuration file and return at once?", false},
	{"terminate-raw-connections", "Close raw connections", "Close every raw relay connection?", true},
}

const switchConfirm = "The target is proven, caught up, then promoted while this proxy and its switch.peers pause; " +
	"the old primary is fenced and every client moves to the target. Without attach the target must already " +
	"replicate the current primary."

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	st := h.status()
	cfg, err := json.MarshalIndent(st.Config, "", "  ")
	if err != nil {
		h.log.Error("admin: status page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	d := pageData{Nonce: rand.Text(), S: st, Config: string(cfg), Commands: pageCommands, SwitchConfirm: switchConfirm}
	var b bytes.Buffer
	t, err := pageTmpl()
	if err == nil {
		err = t.Execute(&b, d)
	}
	if err != nil {
		h.log.Error("admin: status page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; style-src 'nonce-%[1]s'; script-src 'nonce-%[1]s'; "+
		"connect-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", d.Nonce))
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	w.Write(b.Bytes())
}

// formatDuration shows seconds as "42s", "3m 05s", "2h 03m", "4d 02h";
// page.html's dur does the same.
func formatDuration(s float64) string {
	n := int64(s)
	switch {
	case n < 60:
		return fmt.Sprintf("%ds", n)
	case n < 3600:
		return fmt.Sprintf("%dm %02ds", n/60, n%60)
	case n < 86400:
		return fmt.Sprintf("%dh %02dm", n/3600, n%3600/60)
	}
	return fmt.Sprintf("%dd %02dh", n/86400, n%86400/3600)
}

// formatMS shows milliseconds; page.html's ms does the same.
func formatMS(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}
