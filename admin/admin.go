package admin

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"

	"redis-proxy/config"
	"redis-proxy/proxy"
)

// Controller is what the admin API needs from the proxy; *proxy.Proxy
// satisfies it.
type Controller interface {
	Status() proxy.Status
	// Config is the configuration in force. It is read at every request,
	// so a reload that changes admin.user or admin.pass applies at once.
	Config() *config.Config
	Pause(ctx context.Context) error
	PauseAsync() error
	Unpause() error
	Reload(ctx context.Context) error
	ReloadAsync() error
	TerminateRawConnections() int
	// Switch moves the proxy and its peers to another primary and
	// returns the report; SwitchAsync starts it; Retarget moves the
	// clients to another server and nothing else.
	Switch(ctx context.Context, to string, attach bool) (proxy.SwitchReport, error)
	SwitchAsync(to string, attach bool) error
	Retarget(ctx context.Context, to string) error
	// Clients lists the managed listener's clients, for /clients.json.
	Clients() []proxy.ClientInfo
	// Charts are the samples of the status page's charts (/info.json "charts").
	Charts() proxy.Charts
}

var _ Controller = (*proxy.Proxy)(nil)

type handler struct {
	c   Controller
	log *slog.Logger
}

// Handler returns the admin API (doc/admin-api.md) over c:
//
//	GET  /               HTML status page
//	GET  /info.json      proxy.Status as JSON
//	GET  /metrics        Prometheus text exposition
//	GET  /clients.json   one object per client (proxy.ClientInfo)
//	GET  /healthz        200 "ok" while running or paused, else 503
//	GET  /readyz         200 "ok" when also the uplink's last health check passed with role master, else 503 and why
//	POST /cmd/           cmd=pause|pause-async|unpause|reload|reload-async|terminate-raw-connections|
//	                     switch|switch-async|retarget
//	GET  /debug/pprof/   net/http/pprof
//
// With admin.pass set, every path but /healthz needs HTTP Basic auth. A
// nil logger discards.
func Handler(c Controller, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{c: c, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("GET /info.json", h.info)
	mux.HandleFunc("GET /metrics", h.metrics)
	mux.HandleFunc("GET /clients.json", h.clients)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	// "/cmd" as well, so that a runbook's missing slash is not a redirect
	// that curl -f would silently accept.
	for _, p := range []string{"/cmd/{$}", "/cmd"} {
		mux.HandleFunc("POST "+p, h.cmd)
		mux.HandleFunc(p, cmdMethodNotAllowed)
	}
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return h.guard(mux)
}

// guard sets the headers every response carries, then enforces Basic auth
// (all paths but /healthz) and refuses cross-site requests that change
// anything.
func (h *handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path != "/healthz" {
			if !h.authorized(w, r) {
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
			if reason := crossSite(r); reason != "" {
				h.log.Warn("admin: cross-site request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", reason)
				writeJSON(w, http.StatusForbidden, reply{Error: reason})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether r may go on, answering 401 (or 500) when not.
// The user and password are compared in constant time, both of them always;
// an empty admin.user accepts any user name.
func (h *handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	cfg := h.c.Config()
	if cfg == nil {
		// Fail closed: without a configuration we cannot know the password.
		writeJSON(w, http.StatusInternalServerError, reply{Error: "no configuration"})
		return false
	}
	if cfg.Admin.Pass == "" {
		return true
	}
	user, pass, ok := r.BasicAuth()
	userOK := equal(user, cfg.Admin.User)
	if cfg.Admin.User == "" {
		userOK = 1
	}
	passOK := equal(pass, cfg.Admin.Pass)
	if ok && userOK&passOK == 1 {
		return true
	}
	if ok {
		h.log.Warn("admin: wrong credentials", "remote", r.RemoteAddr, "path", r.URL.Path)
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="redis-proxy", charset="UTF-8"`)
	writeJSON(w, http.StatusUnauthorized, reply{Error: "authentication required"})
	return false
}

// equal compares a and b in constant time, whatever their lengths; it
// returns 1 when they are equal.
func equal(a, b string) int {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:])
}

// crossSite returns why r comes from another site, or "". Browsers say so
// with Sec-Fetch-Site; older ones with Origin, or only Referer. A request
// with none of them (curl) is not a browser's cross-site request.
func crossSite(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Sprintf("cross-site request refused (Sec-Fetch-Site: %.20s)", site)
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if !sameHost(origin, r.Host) {
			return "cross-site request refused: Origin is not this host"
		}
		return ""
	}
	if ref := r.Header.Get("Referer"); ref != "" && !sameHost(ref, r.Host) {
		return "cross-site request refused: Referer is not this host"
	}
	return ""
}

func sameHost(rawURL, host string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch st := h.c.Status().State; st {
	case proxy.StateRunning, proxy.StatePaused:
		fmt.Fprintln(w, "ok")
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, st)
	}
}

// readyz is the readiness probe: ready to take traffic while running or
// paused and the uplink's last health check passed with role master. With
// health checks off (uplink.check_interval_ms 0) the state alone decides.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if reason := notReady(h.c.Status()); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, reason)
		return
	}
	fmt.Fprintln(w, "ok")
}

// notReady returns why st is not ready, or "".
func notReady(st proxy.Status) string {
	if st.State != proxy.StateRunning && st.State != proxy.StatePaused {
		return "state " + string(st.State)
	}
	if st.Follow.Error != "" {
		return "failover: " + st.Follow.Error
	}
	if !checksOn(st) {
		return ""
	}
	hl := st.Uplink.Health
	switch {
	case hl.LastCheck == "":
		return "no health check yet"
	case !hl.OK:
		return "uplink health check failed: " + hl.Error
	case hl.Role != "master":
		return fmt.Sprintf("uplink role is %s", cmp.Or(hl.Role, "unknown"))
	}
	return ""
}

// checksOn reports whether the uplink health checks run.
func checksOn(st proxy.Status) bool {
	return st.Config != nil && st.Config.Uplink.CheckIntervalMS > 0
}

// infoJSON is /info.json: the status and the charts.
type infoJSON struct {
	proxy.Status
	Charts proxy.Charts `json:"charts"`
}

func (h *handler) info(w http.ResponseWriter, r *http.Request) {
	st := h.status()
	b, err := json.MarshalIndent(infoJSON{Status: st, Charts: h.c.Charts()}, "", "  ")
	if err != nil {
		h.log.Error("admin: info.json", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func (h *handler) clients(w http.ResponseWriter, r *http.Request) {
	cs := h.c.Clients()
	if cs == nil {
		cs = []proxy.ClientInfo{}
	}
	b, err := json.Marshal(cs)
	if err != nil {
		h.log.Error("admin: clients.json", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// status is c.Status() with the configuration sanitized again, in case.
func (h *handler) status() proxy.Status {
	st := h.c.Status()
	if st.Config != nil {
		st.Config = st.Config.Sanitized()
	}
	return st
}

// reply is the JSON body of /cmd/ and of refusals.
type reply struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Closed *int   `json:"closed,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v reply) {
	b, _ := json.Marshal(v) // cannot fail: strings, a bool and an int
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
