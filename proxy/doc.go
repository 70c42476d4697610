// Package proxy is redis-proxy's core: the managed RESP listener with one
// session (a goroutine pair, none while it is idle) per client, each with
// its own uplink connection; the raw relay; and the one state machine
// behind pause, unpause and reload. doc/reliability.md and doc/admin-api.md say what
// clients and operators see.
//
// It imports resp and config, and nothing above it.
//
// The files, each with one job:
//
//	proxy.go      Proxy: New, Start, the accept loop, the session registry, Shutdown, Status
//	state.go      the state machine: pause, unpause, reload, and how they meet
//	switch.go     Switch: move this proxy and its peers to a replica, phase by phase, with no write lost
//	peers.go      the switch's peers (switch.peers), driven through their admin API
//	control.go    the switch's own connections to servers, and comparing addresses
//	retarget.go   Retarget, and moving every client to another uplink (a reload's move, reused by a switch)
//	follow.go     following a primary elected elsewhere (Sentinel, uplink.candidates): one loop decides, the hold, the move
//	sentinel.go   Sentinel mode: asking the sentinels (the master, its replicas), the +switch-master subscription
//	gate.go       the pause gate and each session's hold on it: all pause bookkeeping
//	session.go    a session's fields (by owner) and lifecycle; apply, how the state machine reaches it
//	requests.go   the request goroutine: read, forward, the proxy's own replies, dialing
//	commands.go   classify, and the handlers of the commands the proxy must understand
//	txn.go        the transaction (MULTI ... EXEC) as each goroutine sees it
//	replies.go    the reply goroutine: stream replies, learn outcomes, end units at flush
//	runs.go       a pipeline of plain commands, and their replies, moved in one write each
//	replay.go     the session state a new uplink connection is given, and the one list that restores it
//	blocking.go   blocking commands: their own time limit, and their release at a pause (CLIENT UNBLOCK)
//	pubsub.go     pub/sub and MONITOR between replies; moving a subscriber to a new connection at once
//	tracking.go   CLIENT TRACKING: REDIRECT followed, the invalidate-all after a change of connection
//	server.go     what Redis does not replicate: scripts carried to a new server, SCAN cursors restarted
//	queue.go      the ring of records between the pair, and what a record says
//	deadlines.go  the time limit and idle timeout on the connections
//	uplink.go     dialing Redis (TCP or TLS), the replay round trip, Prove
//	buffers.go    pooled buffers and idle waits that hold none
//	poll_*.go     readiness of our own: one epoll instance for sessions' plain TCP sockets
//	pconn_linux.go  a net.Conn on that poller: deadlines, close while parked, parking a waiter
//	sysio_*.go    the poller's reads, writes and event collection, made without the scheduler's syscall hand-off
//	park.go       idle sessions without goroutines: each side parks, the sweeper, the last side cleans up
//	trim.go       memory back to the system after a burst of connections
//	peer_*.go     whether a client has closed its side of the connection
//	msglog.go     log_messages: commands and replies rendered, secrets masked
//	health.go     the uplink health checks (PING, INFO replication) on the proxy's own connection; parseReplication
//	clients.go    the client list: what each session shows observers, at no cost to its commands
//	charts.go     the status page's charts: a ring of per-second samples of the counters
//	history.go    the last 50 operations
//	stats.go      counters and histograms
//	status.go     the exported types of Status
//	listen_ro.go  the read listener (listen_ro): its sessions, their password, leaving a replica
//	replicas.go   the replicas listen_ro reads from: the set (configured, discovered), its checks, choosing one for a session
//	raw.go        the raw relay (listen_raw)
package proxy
