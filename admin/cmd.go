package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"redis-proxy/proxy"
)

const (
	// maxCmdBody bounds a /cmd/ request body.
	maxCmdBody = 64 << 10
	// cmdTimeout bounds pause and reload as seen from /cmd/. The proxy
	// bounds them itself (read_time_limit_ms); this is a backstop, shorter
	// than the server's WriteTimeout so that the reply still gets out.
	cmdTimeout = 4 * time.Minute
)

// commands are the values of cmd, in the order the page shows them.
var commands = []string{"pause", "pause-async", "unpause", "reload", "reload-async", "terminate-raw-connections",
	"switch", "switch-async", "retarget"}

// parseForm reads the query and an urlencoded or multipart body into r.Form.
func parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	if err := r.ParseMultipartForm(maxCmdBody); !errors.Is(err, http.ErrNotMultipart) {
		return err
	}
	return nil
}

func cmdMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeJSON(w, http.StatusMethodNotAllowed, reply{Error: "use POST with cmd=" + strings.Join(commands, "|")})
}

// cmd runs one command (doc/admin-api.md, POST /cmd/) and answers
// {"ok": true} (200) or {"ok": false, "error": ...} with 400 (bad request,
// or a config that does not prove), 409 (not possible in this state) or 500.
func (h *handler) cmd(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxCmdBody)
	if err := parseForm(r); err != nil {
		writeJSON(w, http.StatusBadRequest, reply{Error: "bad form: " + err.Error()})
		return
	}
	valid := "valid: " + strings.Join(commands, ", ")
	var name string
	switch vs := r.Form["cmd"]; len(vs) {
	case 0:
		writeJSON(w, http.StatusBadRequest, reply{Error: "missing cmd; " + valid})
		return
	case 1:
		name = vs[0]
	default:
		writeJSON(w, http.StatusBadRequest, reply{Error: "cmd given more than once; " + valid})
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), cmdTimeout)
	defer cancel()
	start := time.Now()
	var closed *int
	var err error
	switch name {
	case "pause":
		err = h.c.Pause(ctx)
	case "pause-async":
		err = h.c.PauseAsync()
	case "unpause":
		err = h.c.Unpause()
	case "reload":
		err = h.c.Reload(ctx)
	case "reload-async":
		err = h.c.ReloadAsync()
	case "terminate-raw-connections":
		n := h.c.TerminateRawConnections()
		closed = &n
	case "switch":
		h.doSwitch(ctx, w, r, start)
		return
	case "switch-async":
		to, attach, ferr := switchArgs(r)
		if ferr != "" {
			writeJSON(w, http.StatusBadRequest, reply{Error: ferr})
			return
		}
		err = h.c.SwitchAsync(to, attach)
	case "retarget":
		to, _, ferr := switchArgs(r)
		if ferr != "" {
			writeJSON(w, http.StatusBadRequest, reply{Error: ferr})
			return
		}
		err = h.c.Retarget(ctx, to)
	default:
		writeJSON(w, http.StatusBadRequest, reply{Error: fmt.Sprintf("unknown cmd %.40q; %s", name, valid)})
		return
	}
	log := h.log.With("cmd", name, "remote", r.RemoteAddr, "duration_ms", time.Since(start).Milliseconds())
	if err == nil {
		log.Info("admin: command done")
		writeJSON(w, http.StatusOK, reply{OK: true, Closed: closed})
		return
	}
	log.Warn("admin: command failed", "err", err)
	writeJSON(w, errorCode(err), reply{Error: err.Error()})
}

// errorCode is the status of a command's error: 400 for a config that
// does not prove or a refusal before anything changed, 409 for one not
// possible in this state, 500 otherwise.
func errorCode(err error) int {
	var cerr *proxy.ConfigError
	switch {
	case errors.As(err, &cerr), errors.Is(err, proxy.ErrRefused):
		return http.StatusBadRequest
	case errors.Is(err, proxy.ErrState):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// switchArgs reads to= and attach= of switch, switch-async and retarget;
// a non-empty third value is why they are refused. A missing or bad to=
// is left to the proxy, which refuses it with the reason.
func switchArgs(r *http.Request) (to string, attach bool, refusal string) {
	if len(r.Form["to"]) > 1 {
		return "", false, "to given more than once"
	}
	switch a := r.Form.Get("attach"); a {
	case "", "no":
	case "yes":
		attach = true
	default:
		return "", false, fmt.Sprintf("attach=%.40q: want yes or no", a)
	}
	return strings.TrimSpace(r.Form.Get("to")), attach, ""
}

// doSwitch runs cmd=switch and answers with the report: every key of it,
// ok and error included, with 200, 400, 409 or 500.
func (h *handler) doSwitch(ctx context.Context, w http.ResponseWriter, r *http.Request, start time.Time) {
	to, attach, refusal := switchArgs(r)
	if refusal != "" {
		writeJSON(w, http.StatusBadRequest, reply{Error: refusal})
		return
	}
	rep, err := h.c.Switch(ctx, to, attach)
	if rep.Phases == nil {
		rep.Phases = []proxy.Phase{}
	}
	code := http.StatusOK
	log := h.log.With("cmd", "switch", "to", to, "remote", r.RemoteAddr, "duration_ms", time.Since(start).Milliseconds())
	if err != nil {
		code = errorCode(err)
		rep.OK = false
		if rep.Error == "" {
			rep.Error = err.Error()
		}
		log.Warn("admin: command failed", "err", err, "rolled_back", rep.RolledBack)
	} else {
		log.Info("admin: command done", "paused_ms", rep.PausedMS)
	}
	b, _ := json.Marshal(rep) // cannot fail: strings, bools, numbers
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
