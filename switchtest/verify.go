package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"redis-proxy/internal/redistest"
)

const (
	verifyTimeout = 30 * time.Second
	lrangeChunk   = 10000
	maxProblems   = 30
)

// Verification is what the final server holds, judged against every
// client's record of acknowledged writes.
type Verification struct {
	Server           string   `json:"server"`
	Clients          int      `json:"clients"`
	WritesChecked    int64    `json:"writes_checked"`    // acknowledged INCRs + RPUSHes
	Lost             int64    `json:"lost"`              // acknowledged, not on the server
	Duplicated       int64    `json:"duplicated"`        // applied more than once
	Phantom          int64    `json:"phantom"`           // list entries never sent
	OutOfOrder       int64    `json:"out_of_order"`      // list entries out of sequence order
	UncertainApplied int64    `json:"uncertain_applied"` // uncertain writes found on the server
	UncertainAbsent  int64    `json:"uncertain_absent"`  // uncertain writes not found
	Problems         []string `json:"problems,omitempty"`
}

// counterCheck judges a counter: acked INCRs acknowledged, uncertain ones
// that may or may not have been applied, value on the server.
func counterCheck(acked, uncertain, value int64) (lost, duplicated, uncertainApplied int64) {
	switch {
	case value < acked:
		return acked - value, 0, 0
	case value > acked+uncertain:
		return 0, value - acked - uncertain, uncertain
	}
	return 0, 0, value - acked
}

// listResult is the judgement of one list.
type listResult struct {
	lost, duplicated, phantom, outOfOrder int64
	uncertainApplied, uncertainAbsent     int64
	missing                               []int64 // the first lost sequence numbers
}

// listCheck judges a list: acked are the acknowledged sequence numbers in
// the order they were pushed, uncertain the ones that may or may not have
// been, actual what the server holds. The list must hold every acked
// number once, in order, possibly with uncertain ones in between, and
// nothing else.
func listCheck(acked, uncertain, actual []int64) listResult {
	var r listResult
	count := make(map[int64]int, len(actual))
	prev, havePrev := int64(0), false
	for _, v := range actual {
		count[v]++
		if count[v] > 1 {
			r.duplicated++
			continue
		}
		if havePrev && v < prev {
			r.outOfOrder++
		}
		prev, havePrev = v, true
	}
	ackedSet := make(map[int64]bool, len(acked))
	for _, v := range acked {
		ackedSet[v] = true
		if count[v] == 0 {
			r.lost++
			if len(r.missing) < 5 {
				r.missing = append(r.missing, v)
			}
		}
	}
	uncertainSet := make(map[int64]bool, len(uncertain))
	for _, v := range uncertain {
		uncertainSet[v] = true
		if count[v] > 0 {
			r.uncertainApplied++
		} else {
			r.uncertainAbsent++
		}
	}
	for v := range count {
		if !ackedSet[v] && !uncertainSet[v] {
			r.phantom++
		}
	}
	return r
}

// verify reads every client's counter and list from the server at addr
// (directly, not through the proxy) and judges them.
func verify(addr string, clients []*loadClient) (Verification, error) {
	vr := Verification{Server: addr, Clients: len(clients)}
	conn, err := redistest.Dial(addr, verifyTimeout)
	if err != nil {
		return vr, err
	}
	defer conn.Close()
	conn.SetTimeout(verifyTimeout)
	problem := func(format string, args ...any) {
		if len(vr.Problems) < maxProblems {
			vr.Problems = append(vr.Problems, fmt.Sprintf(format, args...))
		}
	}
	for _, c := range clients {
		if _, err := mustDo(conn, "SELECT", c.db); err != nil {
			return vr, err
		}
		v, err := mustDo(conn, "GET", c.counterKey)
		if err != nil {
			return vr, err
		}
		var value int64
		if !v.Null {
			if value, err = strconv.ParseInt(v.Str, 10, 64); err != nil {
				return vr, fmt.Errorf("GET %s: %w", c.counterKey, err)
			}
		}
		list, err := readList(conn, c.listKey)
		if err != nil {
			return vr, err
		}
		who := fmt.Sprintf("client %d (db %d, %s, RESP%d)", c.id, c.db, c.kind, map[bool]int{false: 2, true: 3}[c.resp3])

		vr.WritesChecked += c.incrAcked + int64(len(c.listAcked))
		lost, dup, applied := counterCheck(c.incrAcked, c.incrUncertain, value)
		vr.Lost += lost
		vr.Duplicated += dup
		vr.UncertainApplied += applied
		vr.UncertainAbsent += c.incrUncertain - applied
		if lost > 0 || dup > 0 {
			problem("%s: %s = %d, acknowledged INCRs %d (+%d uncertain): %d lost, %d duplicated",
				who, c.counterKey, value, c.incrAcked, c.incrUncertain, lost, dup)
		}

		r := listCheck(c.listAcked, c.listUncertain, list)
		vr.Lost += r.lost
		vr.Duplicated += r.duplicated
		vr.Phantom += r.phantom
		vr.OutOfOrder += r.outOfOrder
		vr.UncertainApplied += r.uncertainApplied
		vr.UncertainAbsent += r.uncertainAbsent
		if r.lost > 0 || r.duplicated > 0 || r.phantom > 0 || r.outOfOrder > 0 {
			problem("%s: %s has %d entries, acknowledged %d (+%d uncertain): %d lost (first %s), %d duplicated, %d never sent, %d out of order",
				who, c.listKey, len(list), len(c.listAcked), len(c.listUncertain),
				r.lost, joinInts(r.missing), r.duplicated, r.phantom, r.outOfOrder)
		}
	}
	return vr, nil
}

// readList reads a whole list in chunks.
func readList(conn *redistest.Client, key string) ([]int64, error) {
	var out []int64
	for start := 0; ; start += lrangeChunk {
		v, err := mustDo(conn, "LRANGE", key, start, start+lrangeChunk-1)
		if err != nil {
			return nil, err
		}
		for _, e := range v.Elems {
			n, err := strconv.ParseInt(e.Str, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("LRANGE %s: entry %q: %w", key, e.Str, err)
			}
			out = append(out, n)
		}
		if len(v.Elems) < lrangeChunk {
			return out, nil
		}
	}
}

func mustDo(conn *redistest.Client, args ...any) (redistest.Value, error) {
	v, err := conn.Do(args...)
	if err == nil {
		err = v.Err()
	}
	if err != nil {
		return v, fmt.Errorf("verify: %v: %w", args, err)
	}
	return v, nil
}

func joinInts(xs []int64) string {
	if len(xs) == 0 {
		return "-"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, ",")
}
