module github.com/coffer-csi/coffer/tests/harness

go 1.26.0
