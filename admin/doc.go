// Package admin serves redis-proxy's HTTP(S) admin API and HTML status page
// (CONTRACT.md section 5) over a small Controller interface that the proxy
// satisfies. It never owns or reaches into the proxy.
package admin
