package conn

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
)

// nodeExtern and event are etcd's v2 answer types (v2store.NodeExtern and
// Event), so the tests decode what etcd writes.
type nodeExtern struct {
	Key           string        `json:"key,omitempty"`
	Value         *string       `json:"value,omitempty"`
	Dir           bool          `json:"dir,omitempty"`
	Expiration    *time.Time    `json:"expiration,omitempty"`
	TTL           int64         `json:"ttl,omitempty"`
	Nodes         []*nodeExtern `json:"nodes,omitempty"`
	ModifiedIndex uint64        `json:"modifiedIndex,omitempty"`
	CreatedIndex  uint64        `json:"createdIndex,omitempty"`
}

type event struct {
	Action   string      `json:"action"`
	Node     *nodeExtern `json:"node,omitempty"`
	PrevNode *nodeExtern `json:"prevNode,omitempty"`
}

func etcdAnswer(t testing.TB) []byte {
	exp := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	val := func(s string) *string { return &s }
	doc := func(k, v string, idx uint64) *nodeExtern {
		return &nodeExtern{Key: k, Value: val(v), ModifiedIndex: idx, CreatedIndex: idx}
	}
	leased := doc("/rok/gw/sessions/s1", "x", 9)
	leased.Expiration, leased.TTL = &exp, 3599
	ev := event{Action: "get", Node: &nodeExtern{Key: "/rok/gw", Dir: true, ModifiedIndex: 4, CreatedIndex: 4, Nodes: []*nodeExtern{
		doc("/rok/gw/a", `{"bucket":"b-1","map":"maps-ca/x","version":1}`, 5),
		doc("/rok/gw/ключ 🚀+%", "unicode <&> \u2028 \x01 \t\n\"\\ ", 6),
		doc("/rok/gw/empty", "", 7),
		{Key: "/rok/gw/dir", Dir: true, ModifiedIndex: 8, CreatedIndex: 8, Nodes: []*nodeExtern{leased}},
		{Key: "/rok/gw/emptydir", Dir: true, ModifiedIndex: 10, CreatedIndex: 10},
		doc("/rok/gw/bad-utf8", "\xff\xfe", 11),
	}}}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeNodeReadsWhatEtcdWrites(t *testing.T) {
	b := etcdAnswer(t)
	n, ok := decodeNode(b)
	if !ok {
		t.Fatalf("decodeNode refused etcd's answer %s", b)
	}
	var a v2Answer
	if err := v2json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(n, a.Node) {
		t.Fatalf("decodeNode and v2json differ:\n%s\n%s", dump(n), dump(a.Node))
	}
	if got := n.Nodes[1].Value; got != "unicode <&> \u2028 \x01 \t\n\"\\ " {
		t.Fatalf("escaped value read as %q", got)
	}
	if n.Nodes[3].Nodes[0].Expiration == nil || n.Nodes[3].Nodes[0].TTL != 3599 {
		t.Fatalf("TTL document read without its expiry: %s", dump(n.Nodes[3].Nodes[0]))
	}
}

func TestDecodeNodeLeavesOddAnswersToV2JSON(t *testing.T) {
	for _, b := range []string{
		``,
		`{"action":"get"}`, // no node: ok, nil
		`{"node":null}`,
		`{"node":{"key":"/a","value":null}}`,
		`{"node":{"key":"/a","createdIndex":1.5}}`,
		`{"node":{"key":"/a","createdIndex":-1}}`,
		`{"node":{"key":"/a","createdIndex":18446744073709551616}}`,
		`{"node":{"key":"/a","key":"/b"}}`,
		`{"node":{"key":"/a\ud83d\ude80"}}`,
		`{"node":{"key":"/a"}} x`,
		`{"node":{"key":"/a","dir":"true"}}`,
		`{"node":{"k\u0065y":"/a"}}`,
		`{"node":{"key":"/a` + "\x01" + `"}}`,
		`{"node":{"key":"/a","nodes":{}}}`,
		`{"node":{"key":"/a","expiration":"yesterday"}}`,
		`{"node":` + strings.Repeat(`{"x":`, maxDepth+1) + `1` + strings.Repeat(`}`, maxDepth+1) + `}`,
	} {
		n, ok := decodeNode([]byte(b))
		if ok && n != nil {
			t.Errorf("decodeNode took %.80q as %s", b, dump(n))
		}
	}
}

// FuzzDecodeNode: whatever decodeNode accepts, v2json decodes to the same
// node.
func FuzzDecodeNode(f *testing.F) {
	f.Add(etcdAnswer(f))
	f.Add([]byte(`{"action":"get","node":{"key":"/a","nodes":[],"ttl":-3,"x":[1,{"y":null},"z\n"]}}`))
	f.Add([]byte(`{"node":{"key":"/a\u00e9\u4e2d","value":"\/\b\f\r"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := decodeNode(b)
		if !ok {
			return
		}
		var a v2Answer
		if err := v2json.Unmarshal(b, &a); err != nil {
			t.Fatalf("decodeNode took %q, v2json refused it: %v", b, err)
		}
		if !reflect.DeepEqual(n, a.Node) {
			t.Fatalf("%q: decodeNode and v2json differ:\n%s\n%s", b, dump(n), dump(a.Node))
		}
	})
}

func dump(n *clientv2.Node) string {
	b, _ := json.Marshal(n)
	return fmt.Sprintf("%s", b)
}

func BenchmarkDecodeNode(b *testing.B) {
	var nodes []*nodeExtern
	for i := 0; i < 100; i++ {
		v := strings.Repeat("v", 500)
		if i%4 == 0 {
			v = `{"bucket":"bucket-0001","object":"obj-000001","version":1,"map":"maps-ca/abc"}`
		}
		nodes = append(nodes, &nodeExtern{Key: fmt.Sprintf("/rok/gw/objects/bucket-0001/d1/e1/doc-%07d", i), Value: &v, ModifiedIndex: uint64(i + 10), CreatedIndex: uint64(i + 10)})
	}
	body, _ := json.Marshal(event{Action: "get", Node: &nodeExtern{Key: "/rok/gw/objects/bucket-0001", Dir: true, Nodes: nodes}})
	b.SetBytes(int64(len(body)))
	b.Run("decodeNode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, ok := decodeNode(body); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("v2json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var a v2Answer
			if err := v2json.Unmarshal(body, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
