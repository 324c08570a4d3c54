package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// manifests are the files an operator applies, and what each holds.
var manifests = map[string][]string{
	"config.yaml":            {"v1/ConfigMap", "v1/ServiceAccount"},
	"sidecar-daemonset.yaml": {"apps/v1/DaemonSet"},
	"sidecar-patch.yaml":     {"apps/v1/DaemonSet"},
	"upgrade-job.yaml":       {"batch/v1/Job"},
}

// newObject is the typed object for apiVersion/kind; nil for another kind.
func newObject(gvk string) any {
	switch gvk {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}
	case "batch/v1/Job":
		return &batchv1.Job{}
	}
	return nil
}

// decodeFile decodes every YAML document of file strictly: an unknown
// field, a duplicated key or a value of the wrong type fails.
func decodeFile(t *testing.T, file string) []any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return objs
}

func decodeAll(b []byte) ([]any, error) {
	var objs []any
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		gvk := tm.APIVersion + "/" + tm.Kind
		obj := newObject(gvk)
		if obj == nil {
			return nil, fmt.Errorf("document %d: unexpected kind %s", i, gvk)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, gvk, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func stripComments(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func kinds(objs []any) []string {
	var ks []string
	for _, o := range objs {
		switch o.(type) {
		case *corev1.ConfigMap:
			ks = append(ks, "v1/ConfigMap")
		case *corev1.ServiceAccount:
			ks = append(ks, "v1/ServiceAccount")
		case *appsv1.DaemonSet:
			ks = append(ks, "apps/v1/DaemonSet")
		case *batchv1.Job:
			ks = append(ks, "batch/v1/Job")
		}
	}
	return ks
}

// TestManifestsDecodeStrictly decodes every manifest of the folder into
// the API types; a YAML file that is not in the list fails too, so a new
// manifest is decoded as soon as it is added.
func TestManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		want, ok := manifests[f]
		if !ok {
			t.Errorf("%s is not in this test's list of manifests: add it with its kinds", f)
			continue
		}
		if got := kinds(decodeFile(t, f)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s holds %v, want %v", f, got, want)
		}
	}
	for f := range manifests {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("manifest %s: %v", f, err)
		}
	}
}

// TestStrictDecodingRefuses proves the decoding above would catch a typo:
// an unknown field, a duplicated key, a wrong type.
func TestStrictDecodingRefuses(t *testing.T) {
	b, err := os.ReadFile("sidecar-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(string) string{
		"unknown field": func(s string) string {
			return strings.Replace(s, "          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          readinesProbe: {}\n", 1)
		},
		"duplicated key": func(s string) string {
			return strings.Replace(s, "  name: rokup-sidecar\n", "  name: rokup-sidecar\n  name: other\n", 1)
		},
		"wrong type": func(s string) string {
			return strings.Replace(s, "containerPort: 9479", "containerPort: metrics", 1)
		},
	} {
		m := mutate(string(b))
		if m == string(b) {
			t.Fatalf("%s: the mutation changed nothing", name)
		}
		if _, err := decodeAll([]byte(m)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

func daemonSet(t *testing.T, file string) *appsv1.DaemonSet {
	t.Helper()
	return decodeFile(t, file)[0].(*appsv1.DaemonSet)
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

// flagValues maps each --flag=value of args to its value.
func flagValues(t *testing.T, args []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("argument %q is not --flag or --flag=value", a)
			continue
		}
		k, v, _ := strings.Cut(a[2:], "=")
		m[k] = v
	}
	return m
}

// TestSidecarDaemonSet checks what the deployment relies on.
func TestSidecarDaemonSet(t *testing.T) {
	ds := daemonSet(t, "sidecar-daemonset.yaml")
	pod := ds.Spec.Template
	if !reflect.DeepEqual(ds.Spec.Selector.MatchLabels, pod.Labels) && !subset(ds.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("selector %v does not select the pod's labels %v", ds.Spec.Selector.MatchLabels, pod.Labels)
	}
	c := container(t, pod.Spec, "rokup-sidecar")
	checkSidecar(t, pod.Spec, c)

	// Prometheus finds /metrics on the port the sidecar listens on.
	flags := flagValues(t, c.Args)
	_, port, _ := strings.Cut(flags["listen-metrics"], ":")
	want := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": "/metrics"}
	for k, v := range want {
		if pod.Annotations[k] != v {
			t.Errorf("annotation %s=%q, want %q", k, pod.Annotations[k], v)
		}
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g < 20 {
		t.Errorf("terminationGracePeriodSeconds %v: the sidecar takes up to 15 s to stop", g)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Errorf("the pod mounts a service account token; rokup never talks to the Kubernetes API")
	}
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) > 0
}

// checkSidecar checks the sidecar container c in pod spec.
func checkSidecar(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	if !reflect.DeepEqual(c.Command, []string{"rokup", "sidecar"}) {
		t.Errorf("command %v, want rokup sidecar", c.Command)
	}
	flags := flagValues(t, c.Args)
	checkFlags(t, "sidecar", flags)
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	// volumeAt is the volume mounted at the folder holding path.
	volumeAt := func(path string) (corev1.Volume, corev1.VolumeMount, bool) {
		for p := path; p != "/" && p != "."; p = filepath.Dir(p) {
			if m, ok := mounts[p]; ok {
				v, ok := volumes[m.Name]
				return v, m, ok
			}
		}
		return corev1.Volume{}, corev1.VolumeMount{}, false
	}

	// --node is the node's name, from the downward API.
	if flags["node"] != "$(NODE_NAME)" {
		t.Errorf("--node=%q, want $(NODE_NAME)", flags["node"])
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not the downward API's spec.nodeName: %+v", e)
	}
	if e := env["ROK_ETCD_ENDPOINTS"]; e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil {
		t.Errorf("ROK_ETCD_ENDPOINTS does not come from the rokup ConfigMap: %+v", e)
	}

	// The storage roots are the host's, read-write (the .rok-node marker).
	for _, f := range []string{"nodelocal-root", "local-root"} {
		v, m, ok := volumeAt(flags[f])
		switch {
		case !ok:
			t.Errorf("--%s=%s is not on a mounted volume", f, flags[f])
		case v.HostPath == nil:
			t.Errorf("--%s=%s is on volume %s, not a hostPath", f, flags[f], v.Name)
		case v.HostPath.Path != m.MountPath || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectory:
			t.Errorf("--%s: hostPath %s (type %v) mounted at %s: want the same path, an existing Directory", f, v.HostPath.Path, v.HostPath.Type, m.MountPath)
		case m.ReadOnly:
			t.Errorf("--%s is mounted read-only: the sidecar writes its node marker there", f)
		}
	}

	// TLS to etcd from the Secret: each file a key of it.
	for _, f := range []string{"cacert", "cert", "key"} {
		v, m, ok := volumeAt(flags[f])
		if !ok || v.Secret == nil {
			t.Errorf("--%s=%s is not on a Secret volume", f, flags[f])
			continue
		}
		if !m.ReadOnly {
			t.Errorf("the TLS secret is mounted read-write")
		}
		rel, _ := filepath.Rel(m.MountPath, flags[f])
		found := len(v.Secret.Items) == 0
		for _, it := range v.Secret.Items {
			found = found || it.Path == rel
		}
		if !found {
			t.Errorf("--%s=%s: secret %s projects no %s", f, flags[f], v.Secret.SecretName, rel)
		}
	}

	// A writable /tmp ($TMPDIR) under the read-only root, of bounded size.
	if v, m, ok := volumeAt("/tmp/x"); !ok || v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || m.ReadOnly {
		t.Errorf("/tmp is not a writable emptyDir with a sizeLimit: %+v", v)
	}

	// Probes on /healthz, on the metrics port.
	_, port, _ := strings.Cut(flags["listen-metrics"], ":")
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", name)
			continue
		}
		if p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s probe on %s, want /healthz", name, p.HTTPGet.Path)
		}
		if got := probePort(c, p.HTTPGet.Port.String()); got != port {
			t.Errorf("%s probe on port %s, the sidecar listens on %s", name, got, port)
		}
	}

	// Resources: requests to be scheduled by, a memory limit above the
	// Gateway move's measured peak (about 90 MiB over the base).
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().Cmp(resource.MustParse("128Mi")) < 0 {
		t.Errorf("requests %v: want cpu and at least 128Mi of memory", r.Requests)
	}
	if r.Limits.Memory().Cmp(resource.MustParse("256Mi")) < 0 {
		t.Errorf("memory limit %v: want at least 256Mi", r.Limits.Memory())
	}
	checkSecurity(t, c)
}

func probePort(c corev1.Container, port string) string {
	for _, p := range c.Ports {
		if p.Name == port {
			return strconv.Itoa(int(p.ContainerPort))
		}
	}
	return port
}

func checkSecurity(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	switch {
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Errorf("%s: runAsNonRoot is not true", c.Name)
	case sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("%s: runAsUser is not a non-root uid", c.Name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
	case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities %+v, want all dropped", c.Name, sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: no RuntimeDefault seccomp profile", c.Name)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("%s is privileged", c.Name)
	}
}

// TestSidecarPatch applies sidecar-patch.yaml to a stand-in of Rok's
// DaemonSet as kustomize's strategic merge does: Rok's container and
// volumes stay, the sidecar and its volumes are added, the same as in
// sidecar-daemonset.yaml.
func TestSidecarPatch(t *testing.T) {
	rok := daemonSet(t, filepath.Join("testdata", "rok-daemonset.yaml"))
	patch := daemonSet(t, "sidecar-patch.yaml")
	standalone := daemonSet(t, "sidecar-daemonset.yaml")
	if !reflect.DeepEqual(patch.Spec.Template.Spec.Containers, standalone.Spec.Template.Spec.Containers) {
		t.Errorf("the patch's container differs from sidecar-daemonset.yaml's")
	}
	if !reflect.DeepEqual(patch.Spec.Template.Spec.Volumes, standalone.Spec.Template.Spec.Volumes) {
		t.Errorf("the patch's volumes differ from sidecar-daemonset.yaml's")
	}
	orig, err := json.Marshal(rok)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := os.ReadFile("sidecar-patch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pj, err := yaml.YAMLToJSON(pb)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := strategicpatch.StrategicMergePatch(orig, pj, appsv1.DaemonSet{})
	if err != nil {
		t.Fatal(err)
	}
	var out appsv1.DaemonSet
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	spec := out.Spec.Template.Spec
	var names []string
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	sort.Strings(names) // the merge puts the patch's first
	if !reflect.DeepEqual(names, []string{"rok-composer", "rokup-sidecar"}) {
		t.Fatalf("patched DaemonSet runs %v, want Rok's rok-composer and rokup-sidecar", names)
	}
	if !reflect.DeepEqual(container(t, spec, "rok-composer"), rok.Spec.Template.Spec.Containers[0]) {
		t.Errorf("the patch changed Rok's own container")
	}
	if out.Spec.Template.Annotations["prometheus.io/port"] != "9100" {
		t.Errorf("the patch changed Rok's scrape annotations: %v", out.Spec.Template.Annotations)
	}
	var vols []string
	for _, v := range spec.Volumes {
		vols = append(vols, v.Name)
	}
	sort.Strings(vols)
	want := []string{"nodelocal", "rokup-etcd-client-tls", "rokup-local", "rokup-nodelocal", "rokup-tmp", "tmp"}
	if !reflect.DeepEqual(vols, want) {
		t.Errorf("patched DaemonSet's volumes %v, want Rok's and the sidecar's %v", vols, want)
	}
	checkSidecar(t, spec, container(t, spec, "rokup-sidecar"))
}

// TestUpgradeJob checks the operator's trigger.
func TestUpgradeJob(t *testing.T) {
	job := decodeFile(t, "upgrade-job.yaml")[0].(*batchv1.Job)
	spec := job.Spec.Template.Spec
	if spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %s, want Never", spec.RestartPolicy)
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 0 {
		t.Errorf("backoffLimit %v, want 0: resuming a failed run is the operator's call", job.Spec.BackoffLimit)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("the Job runs %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if !reflect.DeepEqual(c.Command, []string{"rokup", "start"}) {
		t.Errorf("command %v, want rokup start", c.Command)
	}
	flags := flagValues(t, c.Args)
	checkFlags(t, "start", flags)
	if _, ok := flags["wait"]; !ok {
		t.Errorf("the Job does not wait for the run: %v", c.Args)
	}
	if flags["id"] == "" {
		t.Errorf("the Job names no run id: %v", c.Args)
	}
	ds := container(t, daemonSet(t, "sidecar-daemonset.yaml").Spec.Template.Spec, "rokup-sidecar")
	sf := flagValues(t, ds.Args)
	for _, f := range []string{"cacert", "cert", "key"} {
		if flags[f] != sf[f] {
			t.Errorf("--%s=%s in the Job, %s in the sidecar", f, flags[f], sf[f])
		}
	}
	if c.Image != ds.Image {
		t.Errorf("the Job runs image %s, the sidecar %s", c.Image, ds.Image)
	}
	checkSecurity(t, c)
}

var (
	rokupOnce sync.Once
	rokupBin  string
	rokupErr  error
)

// checkFlags checks that every flag is one `rokup CMD --help` lists,
// with the rokup built from this repository.
func checkFlags(t *testing.T, cmd string, flags map[string]string) {
	t.Helper()
	rokupOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rokup-deploy-")
		if err != nil {
			rokupErr = err
			return
		}
		rokupBin = filepath.Join(dir, "rokup")
		b := exec.Command("go", "build", "-o", rokupBin, "./cmd/rokup")
		b.Dir = filepath.Join("..", "..")
		b.Env = append(os.Environ(), "GOWORK=off")
		if out, err := b.CombinedOutput(); err != nil {
			rokupErr = fmt.Errorf("go build ./cmd/rokup: %v\n%s", err, out)
		}
	})
	if rokupErr != nil {
		t.Fatal(rokupErr)
	}
	out, err := exec.Command(rokupBin, cmd, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("rokup %s --help: %v\n%s", cmd, err, out)
	}
	for f := range flags {
		if !regexp.MustCompile(`(?m)^\s+(-\w, )?--` + regexp.QuoteMeta(f) + `\b`).Match(out) {
			t.Errorf("rokup %s has no flag --%s", cmd, f)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rokupBin != "" {
		os.RemoveAll(filepath.Dir(rokupBin))
	}
	os.Exit(code)
}
