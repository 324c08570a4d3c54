// Command rok-composer-tool is the composer's maintenance tool; its
// epoch-update command stamps maps and chocks on storage with epochs in the
// v3 store (docs/design.md#epochs).
//
// Start here: epochupdate.go, which runs composer.UpdateScopes on the
// scopes named (stamped at once).
package main
