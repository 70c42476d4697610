package admin

import (
	"encoding/json"
	"strings"
	"testing"

	"redis-proxy/proxy"
)

// TestReplicasShown: the replicas listen_ro reads from are in /info.json,
// in /metrics (one series per replica) and in the page's table.
func TestReplicasShown(t *testing.T) {
	f := newFake()
	f.st.ListenRO = "127.0.0.1:7011"
	f.st.Replicas = []proxy.ReplicaInfo{
		{Addr: "10.0.0.2:6379", Healthy: true, LagBytes: 12, Clients: 7, Source: "replicas.addrs"},
		{Addr: "10.0.0.3:6379", Error: "lags 2000000 bytes (max_lag_bytes 1048576)", LagBytes: 2000000, Source: "sentinel 127.0.0.1:26379"},
	}
	f.st.Counters.ReadFallbacks = 4
	h := Handler(f, nil)

	w := serve(t, h, request{method: "GET", path: "/info.json"})
	var info struct {
		Replicas []map[string]any `json:"replicas"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Replicas) != 2 || info.Replicas[0]["addr"] != "10.0.0.2:6379" || info.Replicas[0]["healthy"] != true ||
		info.Replicas[1]["lag_bytes"] != float64(2000000) || info.Replicas[0]["clients"] != float64(7) || info.Replicas[1]["error"] == "" {
		t.Errorf("info.json replicas: %v", info.Replicas)
	}

	e, err := parseExposition(serve(t, h, request{method: "GET", path: "/metrics"}).Body.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr string
		want       float64
	}{
		{"replica_up", "10.0.0.2:6379", 1}, {"replica_up", "10.0.0.3:6379", 0},
		{"replica_lag_bytes", "10.0.0.3:6379", 2000000}, {"replica_clients", "10.0.0.2:6379", 7},
	} {
		if have := e.value(t, ns+tc.name, "addr", tc.addr); have != tc.want {
			t.Errorf("%s{addr=%q}: %v, want %v", tc.name, tc.addr, have, tc.want)
		}
	}
	if have := e.value(t, ns+"read_fallbacks_total"); have != 4 {
		t.Errorf("read_fallbacks_total %v", have)
	}

	page := serve(t, h, request{method: "GET", path: "/"}).Body.String()
	for _, want := range []string{`id="replicas-table"`, "10.0.0.3:6379", "lags 2000000 bytes", "127.0.0.1:7011", "<th>found in</th>", "<td>sentinel 127.0.0.1:26379</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
