package admin

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"redis-proxy/proxy"
)

// metrics writes the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	writeMetrics(&b, h.c.Status())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
}

const ns = "redis_proxy_"

func writeMetrics(b *bytes.Buffer, st proxy.Status) {
	c := st.Counters
	counter := func(name, help string, v float64) {
		family(b, name, "counter", help)
		sample(b, name, "", v)
	}
	gauge := func(name, help string, v float64) {
		family(b, name, "gauge", help)
		sample(b, name, "", v)
	}

	counter("commands_total", "Commands forwarded to the uplink.", float64(c.Commands))
	counter("errors_total", "Error replies sent to clients.", float64(c.Errors))
	counter("time_limit_disconnects_total", "Clients disconnected because a command exceeded read_time_limit_ms.", float64(c.TimeLimitDisconnects))
	counter("uplink_dial_errors_total", "Failed dials to the uplink.", float64(c.UplinkDialErrors))
	family(b, "reloads_total", "counter", "Reloads by result.")
	sample(b, "reloads_total", label("result", "ok"), float64(c.Reloads))
	sample(b, "reloads_total", label("result", "failed"), float64(c.ReloadsFailed))
	counter("pauses_total", "Pauses.", float64(c.Pauses))
	counter("clients_accepted_total", "Client connections accepted.", float64(c.ClientsAccepted))
	counter("clients_rejected_total", "Client connections refused by max_clients.", float64(c.ClientsRejected))
	counter("paused_seconds_total", "Time spent paused.", c.PausedSeconds)
	counter("switches_total", "Switches of the primary (cmd=switch) done.", float64(c.Switches))
	counter("failovers_total", "Moves to a primary elected elsewhere (Sentinel or uplink.candidates).", float64(c.Failovers))

	gauge("clients", "Connected clients.", float64(st.Clients))
	gauge("active_requests", "Commands forwarded and not yet answered.", float64(st.ActiveRequests))
	gauge("waiting_requests", "Commands waiting for the end of a pause.", float64(st.WaitingRequests))
	gauge("raw_connections", "Open raw relay connections.", float64(st.RawConnections))
	gauge("uptime_seconds", "Time since the proxy started.", st.UptimeS)
	gauge("last_pause_seconds", "Duration of the last pause request until paused.", c.LastPauseMS/1000)
	gauge("last_reload_seconds", "Duration of the last reload.", c.LastReloadMS/1000)

	family(b, "state", "gauge", "1 for the current state, 0 for the others.")
	for _, s := range proxy.AllStates {
		sample(b, "state", label("state", string(s)), boolValue(s == st.State))
	}
	family(b, "build_info", "gauge", "Always 1; the version is a label.")
	sample(b, "build_info", label("version", st.Version), 1)
	family(b, "uplink_info", "gauge", "Always 1; the uplink in use is in the labels.")
	sample(b, "uplink_info", label("addr", st.Uplink.Addr)+","+label("tls", strconv.FormatBool(st.Uplink.TLS)), 1)

	if checksOn(st) {
		hl := st.Uplink.Health
		gauge("uplink_up", "1 when the uplink's last health check passed, else 0.", boolValue(hl.OK))
		family(b, "uplink_role", "gauge", "1 for the role the uplink's last health check reported, 0 for the others.")
		for _, role := range []string{"master", "slave"} {
			sample(b, "uplink_role", label("role", role), boolValue(hl.OK && hl.Role == role))
		}
		gauge("uplink_check_duration_seconds", "Round trip of the last passing health check (PING and INFO replication).", hl.LatencyMS/1000)
		counter("uplink_check_failures_total", "Failed health checks of the uplink.", float64(hl.Failures))
	}

	if len(st.Replicas) > 0 {
		counter("read_fallbacks_total", "listen_ro connections sent to the primary because no replica was healthy.", float64(c.ReadFallbacks))
		family(b, "replica_up", "gauge", "1 when the replica is healthy (answers, role slave, link up, lag within max_lag_bytes), else 0.")
		for _, r := range st.Replicas {
			sample(b, "replica_up", label("addr", r.Addr), boolValue(r.Healthy))
		}
		family(b, "replica_lag_bytes", "gauge", "The primary's master_repl_offset minus the replica's slave_repl_offset at the last check.")
		for _, r := range st.Replicas {
			sample(b, "replica_lag_bytes", label("addr", r.Addr), float64(r.LagBytes))
		}
		family(b, "replica_clients", "gauge", "listen_ro clients assigned to the replica.")
		for _, r := range st.Replicas {
			sample(b, "replica_clients", label("addr", r.Addr), float64(r.Clients))
		}
	}

	histogram(b, "command_duration_seconds", "Time from forwarding a command to the uplink to handing its reply to the client.", st.Latency)
	histogram(b, "pause_duration_seconds", "Time from a pause request to the paused state.", st.PauseDurations)
}

func family(b *bytes.Buffer, name, typ, help string) {
	help = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help)
	fmt.Fprintf(b, "# HELP %s%s %s\n# TYPE %s%s %s\n", ns, name, help, ns, name, typ)
}

// sample writes one line; labels is label()s joined by commas, or "".
func sample(b *bytes.Buffer, name, labels string, v float64) {
	b.WriteString(ns + name)
	if labels != "" {
		b.WriteString("{" + labels + "}")
	}
	b.WriteString(" " + formatFloat(v) + "\n")
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func label(name, value string) string {
	return name + `="` + labelEscaper.Replace(value) + `"`
}

// histogram writes h's cumulative buckets, then +Inf, _sum and _count.
func histogram(b *bytes.Buffer, name, help string, h proxy.Histogram) {
	family(b, name, "histogram", help)
	for i, le := range h.Bounds {
		if i >= len(h.Counts) || math.IsInf(le, +1) {
			break
		}
		sample(b, name+"_bucket", label("le", formatFloat(le)), float64(h.Counts[i]))
	}
	sample(b, name+"_bucket", label("le", "+Inf"), float64(h.Count))
	sample(b, name+"_sum", "", h.Sum)
	sample(b, name+"_count", "", float64(h.Count))
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
