// Package deploy_test checks the deployment files under deploy/ without a
// container runtime or a cluster: the image is built with podman and
// inspected, the binary taken out of it serves and answers its own health
// check, and the Kubernetes manifests and the compose file are decoded by
// the projects' own Go types and loaders (unknown fields and wrong types
// refused, the compose file validated against the Compose Specification's
// schema) and checked against the image.
package deploy_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// What the image promises, and what the manifests must agree with.
const (
	entrypoint  = "/usr/local/bin/qrswitch"
	healthcheck = "/usr/local/bin/qrswitch-healthcheck"
	imageUser   = "65532:65532"
	configPath  = "/etc/qrswitch/qrswitch.yaml"
	dataDir     = "/var/lib/qrswitch"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// podman returns podman's path, or fails the test saying how to get it.
func podman(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal("podman is not installed: apt-get install podman (Debian) — the image test builds with it")
	}
	return p
}

func run(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
	}
	return out.Bytes()
}

// imageConfig is what the test reads of `podman image inspect`.
type imageConfig struct {
	Size   int64
	Config struct {
		User         string
		Entrypoint   []string
		Cmd          []string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		WorkingDir   string
	}
	Healthcheck *struct {
		Test     []string
		Interval time.Duration
		Timeout  time.Duration
		Retries  int
	}
}

// TestImage builds the image with deploy/build-image (the operator's
// command), inspects it, takes the binaries out of it and runs them: the
// switch serves on free ports and the image's own health check command
// passes against it. podman run is refused by this machine's sandbox, so
// the binaries run on the host; what differs inside a container (the
// filesystem, the user) is checked by inspection.
func TestImage(t *testing.T) {
	pm := podman(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute) // a backstop: a cold Go build is the slow part
	defer cancel()
	root := repoRoot(t)
	tag := fmt.Sprintf("localhost/qrswitch-test:%d", time.Now().UnixNano())
	start := time.Now()
	run(t, ctx, root, []string{"CONTAINER=" + pm}, filepath.Join(root, "deploy", "build-image"), tag)
	t.Logf("deploy/build-image took %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() { exec.Command(pm, "rmi", "-f", tag).Run() })

	var inspected []imageConfig
	if err := json.Unmarshal(run(t, ctx, root, nil, pm, "image", "inspect", tag), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("podman image inspect: %v (%d images)", err, len(inspected))
	}
	img := inspected[0]
	t.Logf("image size %.1f MB", float64(img.Size)/1e6)
	checks := []struct {
		what      string
		got, want any
	}{
		{"entrypoint", img.Config.Entrypoint, []string{entrypoint}},
		{"cmd", img.Config.Cmd, []string{"serve", "--config", configPath}},
		{"user", img.Config.User, imageUser},
		{"exposed ports", slices.Sorted(mapKeys(img.Config.ExposedPorts)), []string{"8443/tcp", "9090/tcp"}},
		{"volumes", slices.Sorted(mapKeys(img.Config.Volumes)), []string{dataDir}},
		{"working dir", img.Config.WorkingDir, dataDir},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("image %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if strings.HasPrefix(img.Config.User, "0") || strings.HasPrefix(img.Config.User, "root") {
		t.Errorf("image runs as %q, want a non-root user", img.Config.User)
	}
	if hc := img.Healthcheck; hc == nil || fmt.Sprint(hc.Test) != fmt.Sprint([]string{"CMD", healthcheck}) || hc.Interval <= 0 || hc.Retries <= 0 {
		t.Errorf("image health check = %+v, want CMD %s (exec form: the image has no shell)", img.Healthcheck, healthcheck)
	}

	// The files, as the image holds them.
	dir := t.TempDir()
	name := fmt.Sprintf("qrswitch-test-%d", time.Now().UnixNano())
	run(t, ctx, dir, nil, pm, "create", "--name", name, tag)
	t.Cleanup(func() { exec.Command(pm, "rm", "-f", name).Run() })
	for _, f := range []string{entrypoint, healthcheck, "/etc/ssl/certs/ca-certificates.crt"} {
		run(t, ctx, dir, nil, pm, "cp", name+":"+f, dir)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-certificates.crt")); err != nil || fi.Size() == 0 {
		t.Errorf("CA bundle in the image: %v", err)
	}
	files := run(t, ctx, dir, nil, pm, "export", name)
	if owner := tarOwner(t, files, strings.TrimPrefix(dataDir, "/")+"/"); owner != imageUser {
		t.Errorf("%s in the image is owned by %s, want %s (the user writes the store there)", dataDir, owner, imageUser)
	}

	// The binary from the image serves, and the image's health check
	// passes against it.
	cfg := filepath.Join(dir, "qrswitch.yaml")
	if err := os.WriteFile(cfg, []byte(testConfig(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := serve(t, ctx, filepath.Join(dir, "qrswitch"), cfg)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", path, resp.StatusCode, body)
		}
	}
	run(t, ctx, dir, nil, filepath.Join(dir, "qrswitch-healthcheck"), "http://"+admin+"/healthz")
	run(t, ctx, dir, []string{"QRSWITCH_HEALTHCHECK_URL=http://" + admin + "/readyz"}, filepath.Join(dir, "qrswitch-healthcheck"))
	t.Logf("TestImage took %s", time.Since(start).Round(100*time.Millisecond))
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// testConfig is a development configuration on free ports with its store
// in dir: enough for the process to start and answer its probes.
func testConfig(dir string) string {
	return fmt.Sprintf(`env: development
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
data_dir: %[1]s
store: {url: "sqlite://%[1]s/qrswitch.db"}
retailers:
  - {id: demo-shop, username: demo-shop, password: demo-shop-dev-password, institution_id: "0001"}
partners:
  - id: sim-wallet
    name: Sim Wallet
    rail: electrum
    base_url: https://127.0.0.1:9/never-called
    username: switch
    password: switch-dev-password
    scan_username: sim-wallet
    scan_password: sim-wallet-dev-password
`, dir)
}

// serve starts `qrswitch serve` and returns its admin address, read from
// its start-up log line (the event), stopping it when the test ends.
func serve(t *testing.T, ctx context.Context, bin, cfg string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		<-exited
	})
	addr := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.Write(sc.Bytes())
			log.WriteByte('\n')
			var line struct {
				Admin string `json:"admin"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Admin != "" {
				addr <- line.Admin
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("qrswitch serve exited before it listened: %v", <-exited)
		}
		return a
	case <-ctx.Done():
		t.Fatal("qrswitch serve never logged its admin address")
	}
	return ""
}

// tarOwner returns "uid:gid" of the entry name in a tar stream.
func tarOwner(t *testing.T, tarball []byte, name string) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s is not in the image", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return fmt.Sprintf("%d:%d", h.Uid, h.Gid)
		}
	}
}

// --- Kubernetes ---------------------------------------------------------

// documents splits a multi-document YAML file.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := yaml.Marshal(&node)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
}

// strict decodes a manifest into its API type, refusing unknown fields,
// duplicate fields and values of the wrong type, as kubectl's server-side
// field validation does.
func strict(doc []byte, into any) error {
	return sigsyaml.UnmarshalStrict(doc, into)
}

// TestKubernetesManifests decodes every object of deploy/kubernetes into the
// Kubernetes API's own Go types (k8s.io/api) strictly, then checks what the
// schema cannot: selectors select the pods, ports and probes name declared
// ports, mounts name volumes, and the pod runs the image as it is built.
// What it does not check: admission (quotas, policies), that the Secret and
// ConfigMap exist, and anything a cluster would do when it runs the pods.
func TestKubernetesManifests(t *testing.T) {
	path := filepath.Join(repoRoot(t), "deploy", "kubernetes", "qrswitch-deployment.yaml")
	var dep *appsv1.Deployment
	var svc *corev1.Service
	var pdb *policyv1.PodDisruptionBudget
	for i, doc := range documents(t, path) {
		var meta struct{ APIVersion, Kind string }
		if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var err error
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 Deployment":
			dep = new(appsv1.Deployment)
			err = strict(doc, dep)
		case "v1 Service":
			svc = new(corev1.Service)
			err = strict(doc, svc)
		case "policy/v1 PodDisruptionBudget":
			pdb = new(policyv1.PodDisruptionBudget)
			err = strict(doc, pdb)
		default:
			t.Fatalf("document %d: %s %s: a kind this test does not know; add it", i, meta.APIVersion, meta.Kind)
		}
		if err != nil {
			t.Fatalf("document %d (%s): %v", i, meta.Kind, err)
		}
	}
	if dep == nil || svc == nil || pdb == nil {
		t.Fatalf("%s: want a Deployment, a Service and a PodDisruptionBudget", path)
	}
	t.Run("NegativeControl", func(t *testing.T) {
		// The strict decoding does refuse a misspelt field and a wrong type.
		for _, bad := range []string{
			"apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n",
			"apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: two\n",
		} {
			if err := strict([]byte(bad), new(appsv1.Deployment)); err == nil {
				t.Errorf("strict decoding accepted %q", bad)
			}
		}
	})

	pod := dep.Spec.Template
	if sel := dep.Spec.Selector; sel == nil || !selects(sel.MatchLabels, pod.Labels) {
		t.Errorf("Deployment selector %v does not select its pods %v", dep.Spec.Selector, pod.Labels)
	}
	if !selects(svc.Spec.Selector, pod.Labels) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, pod.Labels)
	}
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", pdb.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("pod has %d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if fmt.Sprint(ports) != fmt.Sprint(map[string]int32{"admin": 9090, "https": 8443}) {
		t.Errorf("container ports = %v, want https 8443 and admin 9090 (the image's EXPOSE)", ports)
	}
	for _, sp := range svc.Spec.Ports {
		if _, ok := ports[sp.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %q, which the container does not declare", sp.Name, sp.TargetPort.String())
		}
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("%s probe missing or not an HTTP GET", name)
			continue
		}
		if _, ok := ports[probe.HTTPGet.Port.String()]; !ok || probe.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe on port %q, want the admin port", name, probe.HTTPGet.Port.String())
		}
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe path %q, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe path %q, want /healthz", c.LivenessProbe.HTTPGet.Path)
	}
	volumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = true
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			t.Errorf("mount %s names no volume", m.Name)
		}
		mounts[m.MountPath] = m.Name
	}
	if _, ok := mounts[configPath]; !ok {
		t.Errorf("nothing is mounted at %s, where the image's command reads its configuration", configPath)
	}
	if _, ok := mounts[dataDir]; !ok {
		t.Errorf("nothing is mounted at %s: with readOnlyRootFilesystem the switch cannot write its data", dataDir)
	}
	if fmt.Sprint(c.Args) != fmt.Sprint([]string{"serve", "--config", configPath}) {
		t.Errorf("container args = %v, want the image's command", c.Args)
	}
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || fmt.Sprintf("%d:%d", *sc.RunAsUser, *sc.RunAsUser) != imageUser {
		t.Errorf("pod security context %+v, want runAsNonRoot and the image's user %s", sc, imageUser)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("container security context %+v, want a read-only root filesystem", c.SecurityContext)
	}
}

// selects reports whether every label of sel is on labels, and sel has one.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// --- Compose --------------------------------------------------------------

// TestComposeFile loads deploy/compose/docker-compose.yml with compose-go,
// the Compose Specification's reference loader: the file is validated
// against the specification's JSON schema, then interpolated and typed.
// It then checks that the switches and the simulator run the image
// deploy/build-image makes with commands the binary has, and that the
// health checks reach each replica's own admin port. Not checked: the
// redis image (pulled from a registry these machines cannot reach) and
// anything that happens when the services run.
func TestComposeFile(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "compose")
	load := func(t *testing.T, path string) (*types.Project, error) {
		return loader.LoadWithContext(t.Context(), types.ConfigDetails{
			WorkingDir:  dir,
			ConfigFiles: []types.ConfigFile{{Filename: path}},
			Environment: types.Mapping{},
		}, func(o *loader.Options) { o.SetProjectName("qrswitch", true) })
	}
	t.Run("NegativeControl", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "compose.yml")
		os.WriteFile(bad, []byte("services:\n  a:\n    image: x\n    comand: [serve]\n"), 0o600)
		if _, err := load(t, bad); err == nil {
			t.Error("compose-go accepted a misspelt service key (comand)")
		}
	})
	p, err := load(t, filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	commands := []string{"serve", "partnersim"}
	admin := map[string]string{"switch-1": "9090", "switch-2": "9091"}
	for _, name := range []string{"partnersim", "switch-1", "switch-2"} {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if s.Image != "qrswitch:latest" {
			t.Errorf("service %s image %q, want qrswitch:latest (what deploy/build-image tags)", name, s.Image)
		}
		if len(s.Command) == 0 || !slices.Contains(commands, s.Command[0]) {
			t.Errorf("service %s command %v, want one of the binary's commands %v", name, s.Command, commands)
		}
		port, isSwitch := admin[name]
		if !isSwitch {
			continue
		}
		hc := s.HealthCheck
		if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" || hc.Test[1] != healthcheck ||
			!strings.Contains(strings.Join(hc.Test, " "), "127.0.0.1:"+port+"/") {
			t.Errorf("service %s health check %+v, want CMD %s on its admin port %s", name, hc, healthcheck, port)
		}
	}
}
