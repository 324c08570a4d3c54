package upgrade_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rokup/rokup/upgrade"
)

func TestDecodeRequestRejectsBadValues(t *testing.T) {
	cases := map[string]string{
		"not json":         `upgrade please`,
		"empty":            ``,
		"array":            `[1,2]`,
		"unknown field":    `{"id":"u","action":"upgrade","speed":"fast"}`,
		"empty id":         `{"id":"","action":"upgrade"}`,
		"id with slash":    `{"id":"a/b","action":"upgrade"}`,
		"wrong action":     `{"id":"u","action":"upgrayedd"}`,
		"missing action":   `{"id":"u"}`,
		"wrong mode":       `{"id":"u","action":"upgrade","mode":"cluster"}`,
		"bad node":         `{"id":"u","action":"upgrade","nodes":["../etc"]}`,
		"duplicate node":   `{"id":"u","action":"upgrade","nodes":["n1","n1"]}`,
		"local many nodes": `{"id":"u","action":"upgrade","mode":"local","nodes":["n1","n2"]}`,
		"trailing data":    `{"id":"u","action":"upgrade"} {"id":"v"}`,
		"task no hook":     `{"id":"u","action":"task"}`,
		"abort with mode":  `{"id":"u","action":"abort","mode":"local"}`,
		"wrong type":       `{"id":"u","action":"upgrade","nodes":"n1"}`,
		"oversize":         `{"id":"u","action":"upgrade","nodes":["` + strings.Repeat("n", upgrade.MaxRequestBytes) + `"]}`,
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := upgrade.DecodeRequest([]byte(v))
			if !errors.Is(err, upgrade.ErrInvalidRequest) {
				t.Fatalf("%s accepted (err %v)", v[:min(len(v), 80)], err)
			}
		})
	}
}

func TestDecodeRequestAcceptsTheSpecExample(t *testing.T) {
	r, err := upgrade.DecodeRequest([]byte(`{"id": "upgrade-0.14", "action": "upgrade", "mode": "nodelocal",
 "nodes": ["node-1", "node-2", "node-3"], "precollect": false, "republish": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "upgrade-0.14" || r.Mode != "nodelocal" || len(r.Nodes) != 3 {
		t.Fatalf("decoded %+v", r)
	}
	r, err = upgrade.DecodeRequest([]byte(`{"id":"x","action":"upgrade"}`))
	if err != nil || r.Mode != upgrade.ModeNodelocal {
		t.Fatalf("mode should default to nodelocal: %+v %v", r, err)
	}
}
