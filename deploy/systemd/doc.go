// Package systemd holds no code: its tests check the unit beside it,
// rokup-sidecar.service, and its environment file, rokup-sidecar.env,
// with systemd-analyze and the rokup binary built from this repository.
package systemd
