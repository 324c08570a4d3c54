// Package rehearse runs the etcd side of the 0.14 upgrade on a copy of
// production, before the maintenance window: a copy of one member's data
// directory is served by an embedded etcd 3.5 member (force-new-cluster,
// v2 API on, loopback only), and the real code of the steps runs against
// it: gc-fence, gw-migrate (the Gateway migrations with their
// verification, then republish), the v2 /epochs cleanup and gc-unfence.
//
// From a live cluster instead (Options.Live), the store the steps read is
// read into a new embedded member and rehearsed there; the live cluster
// sees range reads and plain v2 GETs only.
//
// The result is a Report: what the store holds, every problem the real
// run would hit (each named), each step's time and rate, and the Gateway
// downtime the move's measured rate predicts. The data directory given is
// only read; everything is written to the copy.
//
// The files follow the rehearsal's phases: datadir.go (check and copy the
// data directory) or live.go (read a live cluster), member.go (serve the
// copy), checks.go (what the preflight would refuse), steps.go (the
// steps), report.go (the report).
//
// Start here: Run (rehearse.go) with Options; the Report it returns
// prints with Report.Text.
package rehearse
