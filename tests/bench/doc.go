// Package bench measures coffer as the driver sees it: the real coffer
// binary serving its Unix socket, driven with the driver's request shape,
// against the AWS fake with injected per-call latency. `make bench` runs
// TestReport, which prints a markdown table and JSON and writes them next
// to this file (results.md, results.json).
package bench
