// Package kubernetes holds no code: its tests decode the manifests beside
// it strictly into the Kubernetes API types (an unknown or duplicated
// field fails), apply sidecar-patch.yaml to a stand-in of Rok's DaemonSet,
// and check what the deployment relies on: the storage roots from host
// paths, the node name from the downward API, the etcd client TLS, the
// /healthz probes, the scrape annotations, the resources and the
// securityContext, and that every flag is one rokup has.
//
// A module of its own (deploy/go.mod), so that rokup's module does not
// carry the Kubernetes API.
package kubernetes
