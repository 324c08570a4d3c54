// Package gateway holds the Rok Gateway's store and its Django-style
// migrations (SPEC §7), in four parts with one job each:
//
//   - the loader (Registry, Migration): migrations registered per app, each
//     with a name, dependencies, and forward and backward functions;
//   - the graph (Graph): dependency order; cycles and missing dependencies
//     are errors;
//   - the executor (Executor): applies or reverts a plan, with a progress
//     callback and no command-line concerns;
//   - the recorder (Recorder): the ledger in v3 at
//     <prefix>/_migrations/<app>/<name>; entries found in v2 at the same
//     (hidden) path count as applied.
//
// The gw app (GW) ships 0001_initial (the v2-era baseline), 0002_v3_store
// (Move: the verified, batched copy of every document from the v2 store to
// the v3 store) and 0003_published_buckets (MarkPublished; Republish undoes
// it once the operator re-publishes).
package gateway
