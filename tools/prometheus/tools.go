//go:build tools

// Package tools pins Prometheus's server and promtool for
// tools/build-prometheus.sh.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
