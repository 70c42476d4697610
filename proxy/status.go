package proxy

import (
	"errors"
	"time"

	"redis-proxy/config"
)

// State is the proxy's lifecycle state, shown everywhere (doc/admin-api.md).
type State string

// The states, as the admin API and the logs name them.
const (
	StateStarting  State = "starting"
	StateRunning   State = "running"
	StatePausing   State = "pausing"
	StatePaused    State = "paused"
	StateReloading State = "reloading"
	StateStopping  State = "stopping"
)

// AllStates lists every state in a stable order (for the state gauge).
var AllStates = []State{StateStarting, StateRunning, StatePausing, StatePaused, StateReloading, StateStopping}

// ErrState is returned (wrapped) when an operation is not possible in the
// current state; the admin API answers it with 409.
var ErrState = errors.New("not possible in this state")

// ConfigError wraps a reload refused because the new configuration does not
// parse, validate or prove; the admin API answers it with 400.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Status is a snapshot of the proxy for the admin page, /info.json and
// /metrics. The JSON keys are documented in doc/admin-api.md.
type Status struct {
	State           State          `json:"state"`
	Version         string         `json:"version"`
	UptimeS         float64        `json:"uptime_s"`
	Uplink          UplinkInfo     `json:"uplink"`
	Listen          string         `json:"listen"`
	ListenRaw       string         `json:"listen_raw,omitempty"`
	ListenRO        string         `json:"listen_ro,omitempty"`
	Replicas        []ReplicaInfo  `json:"replicas"` // the replicas listen_ro reads from
	Clients         int            `json:"clients"`
	ActiveRequests  int            `json:"active_requests"`
	WaitingRequests int            `json:"waiting_requests"`
	RawConnections  int            `json:"raw_connections"`
	Counters        Counters       `json:"counters"`
	Config          *config.Config `json:"config"` // sanitized: passwords are "***"
	Switch          SwitchReport   `json:"switch"`
	Follow          FollowStatus   `json:"follow"`
	History         []Event        `json:"history"` // newest first

	// Latency is the time from forwarding a command to the uplink to
	// handing its reply to the client. PauseDurations is the time from a
	// pause request to the paused state.
	Latency        Histogram `json:"-"`
	PauseDurations Histogram `json:"-"`
}

// UplinkInfo names the upstream Redis in use.
type UplinkInfo struct {
	Addr   string `json:"addr"`
	TLS    bool   `json:"tls"`
	Health Health `json:"health"`
}

// Health is the result of the last health check of the uplink (PING and
// INFO replication on the proxy's own connection).
type Health struct {
	OK               bool   `json:"ok"`
	Role             string `json:"role"`       // "master", "slave", or "" when unknown
	LastCheck        string `json:"last_check"` // RFC 3339, "" before the first
	Error            string `json:"error"`
	MasterReplOffset int64  `json:"master_repl_offset"`
	// LatencyMS is the last successful check's round trip (PING and
	// INFO); Failures counts the failed checks since start.
	LatencyMS float64 `json:"latency_ms"`
	Failures  uint64  `json:"failures"`
}

// ReplicaInfo is one replica listen_ro reads from: configured
// (replicas.addrs) or discovered (listed by the primary, or in Sentinel
// mode by a sentinel), kept listed once seen. LagBytes is the primary's
// master_repl_offset minus its applied slave_repl_offset at the last
// check; Clients the listen_ro clients assigned to it; Error why it is not
// healthy; Source where it was last found: "replicas.addrs", "primary"
// (its INFO replication) or "sentinel <addr>" (SENTINEL REPLICAS).
type ReplicaInfo struct {
	Addr     string `json:"addr"`
	Healthy  bool   `json:"healthy"`
	LagBytes int64  `json:"lag_bytes"`
	Clients  int    `json:"clients"`
	Error    string `json:"error"`
	Source   string `json:"source"`
}

// ClientInfo is one client of the managed listener, for /clients.json.
type ClientInfo struct {
	ID    uint64  `json:"id"`
	Addr  string  `json:"addr"`
	Name  string  `json:"name"`
	DB    int64   `json:"db"`
	Proto int64   `json:"proto"`
	AgeS  float64 `json:"age_s"`
	IdleS float64 `json:"idle_s"` // since its last command was read
	// Cmd is the oldest command sent to Redis and not yet answered (the
	// first 16 bytes of its name, upper case), or "".
	Cmd string `json:"cmd"`
	// Flags: "multi" (inside MULTI), "blocked" (a blocking command in
	// flight), "waiting" (a command waits for the end of a pause),
	// "pubsub" (subscribed), "tracking" (CLIENT TRACKING on), "monitor".
	Flags []string `json:"flags"`
	Subs  int      `json:"subs"` // subscribed channels, patterns and shard channels
	// Listener is "listen" or "listen_ro"; Server the address its
	// connection goes to ("" while it has none).
	Listener string `json:"listener"`
	Server   string `json:"server"`
}

// Charts are the status page's charts: one sample per IntervalS seconds,
// oldest first, the last five minutes at most.
type Charts struct {
	IntervalS    float64   `json:"interval_s"`
	CommandsPerS []float64 `json:"commands_per_s"`
	P50MS        []float64 `json:"p50_ms"` // latency p50 (the upper bound of its histogram bucket), 0 without commands
	P99MS        []float64 `json:"p99_ms"`
}

// SwitchReport is the last (or the running) switch, phase by phase.
type SwitchReport struct {
	State      string  `json:"state"` // "idle", "running", "done", "failed"
	Phase      string  `json:"phase"`
	OK         bool    `json:"ok"`
	Error      string  `json:"error"`
	RolledBack bool    `json:"rolled_back"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	PausedMS   float64 `json:"paused_ms"`
	Phases     []Phase `json:"phases"`
}

// FollowStatus is the following of a primary elected elsewhere
// (uplink.sentinel or uplink.candidates).
type FollowStatus struct {
	// Sentinel is the sentinel listened to for +switch-master, "" when none.
	Sentinel string `json:"sentinel"`
	// Error is why the proxy cannot follow (two servers report role
	// master), "" when none; /readyz is 503 while it is set.
	Error string `json:"error"`
}

// Phase is one step of a switch and the time it took.
type Phase struct {
	Name string  `json:"name"`
	MS   float64 `json:"ms"`
}

// Counters are monotonic since start, except the Last* durations.
type Counters struct {
	Commands             uint64  `json:"commands"`
	Errors               uint64  `json:"errors"` // error replies sent to clients
	TimeLimitDisconnects uint64  `json:"time_limit_disconnects"`
	UplinkDialErrors     uint64  `json:"uplink_dial_errors"`
	Reloads              uint64  `json:"reloads"` // successful
	ReloadsFailed        uint64  `json:"reloads_failed"`
	Pauses               uint64  `json:"pauses"`
	Switches             uint64  `json:"switches"`
	Failovers            uint64  `json:"failovers"`
	ClientsAccepted      uint64  `json:"clients_accepted"`
	ClientsRejected      uint64  `json:"clients_rejected"` // max_clients
	ReadFallbacks        uint64  `json:"read_fallbacks"`   // listen_ro connections sent to the primary: no healthy replica
	PausedSeconds        float64 `json:"paused_seconds_total"`
	LastPauseMS          float64 `json:"last_pause_ms"`
	LastReloadMS         float64 `json:"last_reload_ms"`
}

// Histogram is a cumulative-bucket snapshot, Prometheus style: Counts[i] is
// the number of observations <= Bounds[i] (seconds); Count and Sum cover all.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Since reports the seconds elapsed since t; a small helper for snapshots.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
