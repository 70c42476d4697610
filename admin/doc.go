// Package admin serves redis-proxy's HTTP(S) admin API and HTML status page
// (doc/admin-api.md) over a small Controller interface that the proxy
// satisfies. It never owns or reaches into the proxy.
package admin
