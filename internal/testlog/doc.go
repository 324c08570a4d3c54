// Command testlog reads `go test -json` on stdin and prints what go test
// prints without -v (the output of failing tests, build errors, and the
// closing ok / FAIL line of each package), keeping a list of the tests
// that skipped. make test pipes every go test through it and ends with
// that list, so a skip is never silent:
//
//	go test -json ./... | go run ./internal/testlog -skips FILE   # appends to FILE
//	go run ./internal/testlog -report FILE                         # prints the list
//
// Its exit status is 0 whatever the tests did: go test's own status is
// the one that counts (make test runs the pipe with pipefail).
package main
