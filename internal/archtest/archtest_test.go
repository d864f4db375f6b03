package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the module whose packages the rules speak of; patterns below
// are relative to it.
const module = "github.com/zdps/zdps"

// rule forbids the packages matched by from to depend, directly or
// transitively, on the packages matched by forbid. A pattern is a package
// path relative to the module; a trailing "/..." also matches every
// package below it. stdlibOnly forbids every dependency outside the
// standard library instead.
type rule struct {
	name string
	from []string
	// notFrom removes packages from from.
	notFrom    []string
	forbid     []string
	stdlibOnly bool
	// future marks a rule for a package that does not exist yet: it
	// applies once the package lands. Every other rule must match at
	// least one package, so that a rename cannot switch a rule off
	// silently.
	future bool
}

// exception is a violation that exists today on purpose, with the reason
// and the issue that removes it. An exception that no longer matches a
// violation fails the test, so the list shrinks as the issues land.
type exception struct {
	from, to string
	reason   string
	issue    string
}

var (
	transports = []string{"internal/api", "internal/deviceapi", "internal/devicewire", "internal/mqttapi"}
	pipeline   = []string{"internal/provisioning/..."}
	stores     = []string{"internal/store/..."}
	// server is every package that only a zdps server needs; the device
	// SDK and the service client must not pull any of it into a device
	// or a third party's program.
	server = []string{
		"internal/api", "internal/deviceapi", "internal/devicewire", "internal/mqttapi", "internal/provisioning/...", "internal/store/...",
		"internal/ca/...", "internal/cakms/...", "internal/instance", "attestation/...", "allocation/...",
		"internal/sweep", "internal/revocation", "internal/manage", "cmd/...",
	}
)

var rules = []rule{
	{
		name:   "attestation verifiers and allocation policies are plugins: they never reach the store, a transport or the pipeline",
		from:   []string{"attestation/...", "allocation/..."},
		forbid: concat(stores, transports, pipeline),
	},
	{
		name:    "nothing outside cmd imports cmd: only the binary wires concrete parts",
		from:    []string{"..."},
		notFrom: []string{"cmd/..."},
		forbid:  []string{"cmd/..."},
	},
	{
		name:   "the device SDK imports no server package",
		from:   []string{"pkg/device/..."},
		forbid: server,
	},
	{
		name:   "the service API client imports no server package",
		from:   []string{"pkg/client"},
		forbid: server,
	},
	{
		name:   "the domain types and SAS tokens import no transport, store or pipeline",
		from:   []string{"pkg/enrollment/...", "pkg/sas"},
		forbid: concat(transports, stores, pipeline),
	},
	{
		name:   "transports do not import each other",
		from:   []string{"internal/api"},
		forbid: []string{"internal/deviceapi"},
	},
	{
		name:   "transports do not import each other",
		from:   []string{"internal/deviceapi"},
		forbid: []string{"internal/api", "internal/mqttapi"},
	},
	{
		name:   "transports do not import each other",
		from:   []string{"internal/mqttapi"},
		forbid: []string{"internal/api", "internal/deviceapi"},
	},
	{
		name:   "the device answers shared by the transports know no transport",
		from:   []string{"internal/devicewire"},
		forbid: []string{"internal/api", "internal/deviceapi", "internal/mqttapi"},
	},
	{
		name: "the pipeline depends on ports: no transport, store backend, concrete policy, verifier or CA",
		from: []string{"internal/provisioning"},
		forbid: concat(transports,
			[]string{"internal/store/bolt", "internal/store/postgres", "internal/store/memory"},
			[]string{"allocation/hashed", "allocation/static", "allocation/geolatency", "allocation/custom"},
			[]string{"attestation/...", "internal/ca/..."}),
	},
	{
		name:   "the service API is handed the CA and its use cases (cmd/zdps wires them): it never reaches the CA itself",
		from:   []string{"internal/api"},
		forbid: []string{"internal/ca/...", "attestation/...", "allocation/custom"},
	},
	{
		name:   "the service API's request reading and authentication know no transport, pipeline, use case or CA",
		from:   []string{"internal/api/apirequest", "internal/api/serviceauth"},
		forbid: concat(transports, pipeline, []string{"internal/manage", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "hub choice is handed the resolved enrollment and the allocation.Policy: no transport, pipeline, concrete policy, verifier or CA",
		from:   []string{"internal/provisioning/placement"},
		forbid: concat(transports, []string{"internal/provisioning", "internal/ca/...", "attestation/...", "allocation/hashed", "allocation/static", "allocation/geolatency", "allocation/custom"}),
	},
	{
		name:   "the pipeline's ports are a contract: no transport, pipeline, store backend, CA, verifier or policy",
		from:   []string{"internal/provisioning/port"},
		forbid: concat(transports, []string{"internal/provisioning", "internal/store/bolt", "internal/store/postgres", "internal/store/memory", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "the attestation adapters and the CA's issuer see the pipeline's ports only, never the pipeline",
		from:   []string{"internal/provisioning/symkey", "internal/provisioning/x509att", "internal/provisioning/tpmatt", "internal/provisioning/renewal", "internal/provisioning/caissuer"},
		forbid: concat(transports, []string{"internal/provisioning"}),
	},
	{
		name:   "the throttle's limits know no transport, pipeline, store backend, CA, verifier or policy",
		from:   []string{"internal/provisioning/limits"},
		forbid: concat(transports, []string{"internal/provisioning", "internal/store/bolt", "internal/store/postgres", "internal/store/memory", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "the record of the pipeline's decisions sits on the trail and the store: no transport, pipeline, use case, CA, verifier or policy",
		from:   []string{"internal/provisioning/decision"},
		forbid: concat(transports, []string{"internal/provisioning", "internal/manage", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "the CA's stored state knows nothing above it: not the running CA, no transport, pipeline or store backend",
		from:   []string{"internal/ca/castate"},
		forbid: concat(transports, pipeline, []string{"internal/ca", "internal/store/...", "internal/cakms/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "the CA's rotations write the next state: no transport, pipeline, use case, verifier or policy",
		from:   []string{"internal/ca/rotation"},
		forbid: concat(transports, pipeline, []string{"internal/manage", "attestation/...", "allocation/..."}),
	},
	{
		name:   "the operations book keeps records for the pipeline and knows nothing above the store",
		from:   []string{"internal/provisioning/operations"},
		forbid: concat(transports, []string{"internal/provisioning", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "management use cases know no transport, pipeline, verifier, policy or CA",
		from:   []string{"internal/manage"},
		forbid: concat(transports, pipeline, []string{"internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "revocation needs the CA only through its CRLSigner port, and nothing above it",
		from:   []string{"internal/revocation"},
		forbid: concat(transports, pipeline, []string{"internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "store backends know nothing above them",
		from:   stores,
		forbid: concat(transports, pipeline, []string{"attestation/...", "allocation/...", "internal/ca/..."}),
	},
	{
		name:   "the audit trail, its export, the detector and the posture sit on the store and know nothing above it",
		from:   []string{"internal/audit", "internal/export", "internal/detect", "internal/posture", "internal/metrics"},
		forbid: concat(transports, pipeline, []string{"internal/manage", "internal/ca/...", "attestation/...", "allocation/...", "internal/opsapi"}),
	},
	{
		name:   "the security operations routes only translate",
		from:   []string{"internal/opsapi"},
		forbid: concat(transports, pipeline, []string{"internal/manage", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "single sign-on only maps identities to principals",
		from:   []string{"internal/oidcauth"},
		forbid: concat(transports, pipeline, []string{"internal/store/...", "internal/manage", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "the web console is a transport handed its use cases",
		from:   []string{"internal/console/..."},
		forbid: concat(transports, pipeline, []string{"internal/ca/...", "attestation/...", "allocation/...", "internal/opsapi", "internal/store/bolt", "internal/store/postgres", "internal/store/memory"}),
	},
	{
		name:   "the central side of edge gateways is a use case: the CA only through its SiteCA port, no transport",
		from:   []string{"internal/sites"},
		forbid: concat(transports, pipeline, []string{"internal/gatewayapi", "internal/manage", "internal/ca/...", "attestation/...", "allocation/..."}),
	},
	{
		name:   "the gateway API only translates: the service API is its Host, the decisions are internal/sites'",
		from:   []string{"internal/gatewayapi"},
		forbid: concat(transports, pipeline, []string{"internal/manage", "internal/ca/...", "attestation/...", "allocation/...", "internal/opsapi"}),
	},
	{
		name:   "the edge side of edge gateways syncs through the management use cases: no transport, no pipeline, no CA",
		from:   []string{"internal/gateway"},
		forbid: concat(transports, pipeline, []string{"internal/gatewayapi", "internal/sites", "internal/ca/...", "attestation/...", "allocation/...", "internal/opsapi"}),
	},
	{
		name:       "the firmware policy and DICE measurements are standard library only",
		from:       []string{"pkg/enrollment/firmware"},
		stdlibOnly: true,
	},
	{
		name:       "the rules of single fields of enrollment documents are standard library only",
		from:       []string{"pkg/enrollment/check"},
		stdlibOnly: true,
	},
	{
		name:       "the DPS wire contract and the webhook signature are standard library only",
		from:       []string{"pkg/dps/...", "pkg/webhooksig"},
		stdlibOnly: true,
	},
	{
		name:       "work that outlives its request (the pipeline's background runs) is standard library only",
		from:       []string{"internal/provisioning/detach"},
		stdlibOnly: true,
	},
	{
		name:       "who a management request comes from is standard library only",
		from:       []string{"internal/principal"},
		stdlibOnly: true,
	},
}

var exceptions = []exception{}

// pkg is what the test reads of `go list -json`.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
}

// loadGraph lists every package of the module with its dependencies.
// Test files are not part of it (go list without -test).
func loadGraph(t *testing.T) (own []*pkg, all map[string]*pkg) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Imports,Deps,Module", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	all = map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		all[p.ImportPath] = p
		if p.Module != nil && p.Module.Path == module {
			own = append(own, p)
		}
	}
	if len(own) < 10 {
		t.Fatalf("go list found only %d packages of %s; is the test run inside the module?", len(own), module)
	}
	return own, all
}

func TestImportRules(t *testing.T) {
	own, all := loadGraph(t)
	violations := check(own, all, rules)

	used := map[exception]bool{}
	var failures []string
	for _, v := range violations {
		if e, ok := excepted(v); ok {
			used[e] = true
			continue
		}
		failures = append(failures, v.String())
	}
	for _, e := range exceptions {
		if !used[e] {
			failures = append(failures, fmt.Sprintf("exception %s -> %s is no longer needed (%s): remove it from the list", e.from, e.to, e.issue))
		}
	}
	for _, r := range rules {
		if r.future || slices.ContainsFunc(own, func(p *pkg) bool { return matchAny(r.from, rel(p.ImportPath)) }) {
			continue
		}
		failures = append(failures, fmt.Sprintf("rule %q matches no package: a package was renamed or moved; update the rule", r.name))
	}
	if len(failures) > 0 {
		t.Errorf("import rules broken (docs/architecture.md, \"Import rules\"):\n%s", strings.Join(failures, "\n"))
	}
}

// TestRulesCatchViolations runs the checker on a made-up graph, so that a
// checker that finds nothing cannot pass unnoticed.
func TestRulesCatchViolations(t *testing.T) {
	p := func(path string, standard bool, imports ...string) *pkg {
		return &pkg{ImportPath: path, Standard: standard, Imports: imports}
	}
	graph := []*pkg{
		p(module+"/allocation/hashed", false, module+"/pkg/enrollment", "fmt"),
		p(module+"/pkg/enrollment", false, module+"/internal/provisioning"),
		p(module+"/internal/provisioning", false, module+"/internal/store"),
		p(module+"/internal/store", false),
		p(module+"/pkg/dps", false, "example.com/other"),
		p("example.com/other", false),
		p("fmt", true),
	}
	all := map[string]*pkg{}
	for _, g := range graph {
		all[g.ImportPath] = g
	}
	fillDeps(all)
	got := check(graph, all, rules)
	want := map[string]bool{
		"allocation/hashed -> internal/provisioning": false, // through pkg/enrollment
		"allocation/hashed -> internal/store":        false,
		"pkg/enrollment -> internal/provisioning":    false,
		"pkg/enrollment -> internal/store":           false,
		"pkg/dps -> example.com/other":               false,
	}
	for _, v := range got {
		key := v.from + " -> " + v.to
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected violation %s", v)
		}
		want[key] = true
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("violation %s not reported", k)
		}
	}
	for _, v := range got {
		if v.from == "allocation/hashed" && v.to == "internal/store" && v.chain != "allocation/hashed -> pkg/enrollment -> internal/provisioning -> internal/store" {
			t.Errorf("chain %q", v.chain)
		}
	}
}

// violation is one forbidden dependency.
type violation struct {
	rule, from, to, chain string
}

func (v violation) String() string {
	return fmt.Sprintf("  %s -> %s breaks %q\n    via %s", v.from, v.to, v.rule, v.chain)
}

func excepted(v violation) (exception, bool) {
	for _, e := range exceptions {
		if e.from == v.from && e.to == v.to {
			return e, true
		}
	}
	return exception{}, false
}

// check returns every dependency of own that a rule forbids, once per
// (rule, from, to).
func check(own []*pkg, all map[string]*pkg, rs []rule) []violation {
	var out []violation
	for _, r := range rs {
		for _, p := range own {
			from := rel(p.ImportPath)
			if !matchAny(r.from, from) || matchAny(r.notFrom, from) {
				continue
			}
			for _, d := range p.Deps {
				dp := all[d]
				var bad bool
				if r.stdlibOnly {
					bad = dp == nil || !dp.Standard
				} else {
					bad = strings.HasPrefix(d, module+"/") && matchAny(r.forbid, rel(d))
				}
				if !bad || from == rel(d) {
					continue
				}
				out = append(out, violation{rule: r.name, from: from, to: rel(d), chain: chain(all, p.ImportPath, d)})
			}
		}
	}
	return out
}

// chain is the shortest import path from a to b, for the failure message.
func chain(all map[string]*pkg, a, b string) string {
	prev := map[string]string{a: ""}
	queue := []string{a}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == b {
			break
		}
		if all[cur] == nil {
			continue
		}
		for _, next := range all[cur].Imports {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	var path []string
	for cur := b; cur != ""; cur = prev[cur] {
		path = append(path, rel(cur))
		if _, ok := prev[cur]; !ok {
			break
		}
	}
	slices.Reverse(path)
	return strings.Join(path, " -> ")
}

// fillDeps computes Deps from Imports, as go list does, for made-up graphs.
func fillDeps(all map[string]*pkg) {
	var visit func(string, map[string]bool)
	visit = func(p string, seen map[string]bool) {
		if all[p] == nil {
			return
		}
		for _, i := range all[p].Imports {
			if !seen[i] {
				seen[i] = true
				visit(i, seen)
			}
		}
	}
	for path, p := range all {
		seen := map[string]bool{}
		visit(path, seen)
		p.Deps = nil
		for d := range seen {
			p.Deps = append(p.Deps, d)
		}
		slices.Sort(p.Deps)
	}
}

func rel(path string) string {
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return path
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// match reports whether path matches pattern: equal, or below it for a
// pattern ending in "/..."; "..." alone matches everything.
func match(pattern, path string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
