package robustness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/instance"
	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/postgres"
	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// What a thief of the store gets. Enrollment keys, group keys, policy keys
// (the owner's included) and webhook URLs are sealed under the KEK, and so
// is the CA key. Each test puts known secrets into a real zdps serve,
// stops it, and searches the raw store (the whole bbolt file, free pages
// included, or pg_dump of the schema) and the server's log for every one
// of them: in base64 as the API carries it, as the decoded bytes, and for
// the CA key its PKCS#8 and SEC 1 encodings and private scalar. It finds
// none, and the secrets still work afterwards: on a new store, on a store
// an older zdps wrote in the clear (sealed at start, then moved to
// PostgreSQL with zdps migrate), and on one whose sealing was cut by
// kill -9.

// TestSecretsNotInTheClearAtRest: on bbolt and on PostgreSQL, secrets
// written through the service API are never stored in the clear.
func TestSecretsNotInTheClearAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs zdps serve")
	}
	for _, backend := range []string{"bolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			env := secretsNewStore(t, backend, nil)
			srv := zdpstest.Start(t, "--store", env.storeArg, "--kek-file", env.kekFile)
			known := secretsCreate(t, srv)
			known.caKey = env.caKey
			secretsUse(t, srv, known)
			srv.Stop()
			secretsNoneInTheClear(t, env.dump(t), known)
			if found := secretsFind([]byte(srv.Logs()), known); len(found) > 0 {
				t.Fatalf("in the server's log: %s", strings.Join(found, "; "))
			}

			// Sealed, and still the same keys after a restart.
			srv.Restart()
			secretsUse(t, srv, known)
			srv.Stop()
		})
	}
}

// TestSecretsLegacyStoreSealedOnStart: a store written before secrets
// were sealed (plaintext keys, as every earlier zdps wrote them) is sealed
// by the next start, says so in its log, keeps working, and moves to
// PostgreSQL with `zdps migrate` still sealed and still usable under the
// same KEK.
func TestSecretsLegacyStoreSealedOnStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs zdps serve")
	}
	ctx := t.Context()
	var known *secretsKnown
	env := secretsNewStore(t, "bolt", func(st *store.Store) { known = secretsWriteLegacy(t, st) })
	known.caKey = env.caKey
	if len(secretsFind(env.dump(t), known)) == 0 {
		t.Fatal("the legacy store holds no plaintext key: the test proves nothing")
	}

	srv := zdpstest.Start(t, "--store", env.storeArg, "--kek-file", env.kekFile)
	if !srv.LogContains("sealed plaintext secrets at rest") {
		t.Fatalf("no migration logged:\n%s", srv.Logs())
	}
	known.owner = secretsOwnerKey(t, srv)
	secretsUse(t, srv, known)
	srv.Stop()
	secretsNoneInTheClear(t, env.dump(t), known)

	// zdps migrate copies the sealed bytes; the same KEK opens them.
	url, schema := pgtest.Schema(t)
	pgURL := pgtest.StoreURL(url, schema)
	out, err := exec.CommandContext(ctx, zdpstest.Binary(t), "migrate", "--from", env.storeArg, "--to", pgURL).CombinedOutput()
	if err != nil {
		t.Fatalf("zdps migrate: %v\n%s", err, out)
	}
	secretsNoneInTheClear(t, secretsPGDump(t, url, schema), known)
	moved := zdpstest.Start(t, "--store", pgURL, "--kek-file", env.kekFile)
	if moved.LogContains("sealed plaintext secrets at rest") {
		t.Fatalf("the copy was sealed again: it should have arrived sealed\n%s", moved.Logs())
	}
	secretsUse(t, moved, known)
	moved.Stop()
}

// secretsStore is a fresh store holding a CA whose key the test knows.
type secretsStore struct {
	storeArg string // --store
	kekFile  string
	caKey    *ecdsa.PrivateKey
	dump     func(t *testing.T) []byte // every byte the store holds, as a thief reads it
}

// secretsNewStore creates the store (bolt file or PostgreSQL schema), a
// KEK file, and imports a CA with a known intermediate key, so the test can
// look for that key; fill, if set, writes into the store before any zdps
// has run.
func secretsNewStore(t *testing.T, backend string, fill func(*store.Store)) *secretsStore {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	kek := bytes.Repeat([]byte{0x3c}, 32)
	kekFile := filepath.Join(dir, "kek")
	if err := os.WriteFile(kekFile, []byte(hex.EncodeToString(kek)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &secretsStore{kekFile: kekFile}
	var b store.Backend
	switch backend {
	case "bolt":
		path := filepath.Join(dir, "zdps.db")
		bb, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, env.storeArg = bb, "bolt:"+path
		env.dump = func(t *testing.T) []byte {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
	case "postgres":
		url, schema := pgtest.Schema(t)
		pb, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		b, env.storeArg = pb, pgtest.StoreURL(url, schema)
		env.dump = func(t *testing.T) []byte { return secretsPGDump(t, url, schema) }
	}
	root := testpki.Issue(t, "secrets test root", true, nil)
	inter := testpki.Issue(t, "secrets test intermediate", true, root)
	env.caKey = inter.Key
	if _, err := ca.Import(ctx, ca.Config{Storage: ca.BackendStorage(b), KEK: kek}, ca.Bundle{
		RootPEM: []byte(root.PEM()), IntermediatePEM: []byte(inter.PEM()), IntermediateKeyPEM: []byte(inter.KeyPEM(t)),
	}); err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		fill(store.New(b, nil))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return env
}

// secretsPGDump is pg_dump of the schema, with every bytea value (the
// store's keys and values, dumped as \x hex) decoded next to it, so that a
// search finds what the table holds and not only its hex.
func secretsPGDump(t *testing.T, url, schema string) []byte {
	t.Helper()
	bin := "pg_dump"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/lib/postgresql/15/bin/pg_dump"
	}
	out, err := exec.CommandContext(t.Context(), bin, "--dbname="+url, "--schema="+schema, "--data-only").Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(out, []byte("COPY "+schema+".")) {
		t.Fatalf("pg_dump holds no table of schema %s:\n%s", schema, out)
	}
	decoded := bytes.Clone(out)
	for _, m := range regexp.MustCompile(`\\\\x([0-9a-f]+)`).FindAllSubmatch(out, -1) {
		b, err := hex.DecodeString(string(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		decoded = append(append(decoded, '\n'), b...)
	}
	return decoded
}

// secretsKnown are the secrets a test put into the server.
type secretsKnown struct {
	enrollmentKeys, groupKeys, policyKeys []string // base64
	webhookURL                            string
	owner                                 string
	caKey                                 *ecdsa.PrivateKey
}

func (k *secretsKnown) all() map[string][]byte {
	out := map[string][]byte{}
	for _, s := range append(append(append([]string{k.owner}, k.enrollmentKeys...), k.groupKeys...), k.policyKeys...) {
		if s == "" {
			continue
		}
		out["key "+s] = []byte(s)
		raw, err := base64.StdEncoding.DecodeString(s)
		if err == nil {
			out["decoded bytes of key "+s] = raw
		}
	}
	if k.webhookURL != "" {
		out["webhook URL"] = []byte(k.webhookURL)
		out["webhook URL credential"] = []byte(k.webhookURL[strings.Index(k.webhookURL, "code=")+5:])
	}
	if k.caKey != nil {
		p8, _ := x509.MarshalPKCS8PrivateKey(k.caKey)
		ec, _ := x509.MarshalECPrivateKey(k.caKey)
		d, _ := k.caKey.Bytes()
		out["CA key PKCS#8"] = p8
		out["CA key SEC 1"] = ec
		out["CA private scalar"] = d
		out["CA private scalar hex"] = []byte(hex.EncodeToString(d))
		out["CA key PKCS#8 base64"] = []byte(base64.StdEncoding.EncodeToString(p8))
	}
	return out
}

// secretsFind names the known secrets found in raw.
func secretsFind(raw []byte, k *secretsKnown) []string {
	var found []string
	for name, b := range k.all() {
		if bytes.Contains(raw, b) {
			found = append(found, name)
		}
	}
	return found
}

func secretsNoneInTheClear(t *testing.T, raw []byte, k *secretsKnown) {
	t.Helper()
	if n := len(k.all()); n < 20 {
		t.Fatalf("only %d forms of secrets to look for", n)
	}
	if found := secretsFind(raw, k); len(found) > 0 {
		t.Fatalf("in the clear in the store (%d bytes): %s", len(raw), strings.Join(found, "; "))
	}
	t.Logf("%d forms of %d secrets searched in %d bytes of store: none found", len(k.all()), len(k.enrollmentKeys)+len(k.groupKeys)+len(k.policyKeys)+3, len(raw))
	// The documents are there, sealed: the search looked at real data.
	for _, want := range []string{"secret-dev", "secret-group", "secret-reader", "zdps:v1:"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Fatalf("store lacks %q: the search proves nothing", want)
		}
	}
}

// secretsKey is a recognisable 64-byte key in base64.
func secretsKey(tag string) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%-64s", "zdps secrets test key "+tag)))
}

const secretsWebhook = "https://alloc.example.com/api/allocate?code=Zm9vYmFyLWZ1bmN0aW9uLWtleS0xMjM0NTY3OA"

func secretsDocs() (*enrollment.IndividualEnrollment, *enrollment.IndividualEnrollment, *enrollment.EnrollmentGroup, *enrollment.SharedAccessPolicy, *enrollment.Hub) {
	sym := func(tag string) *enrollment.AttestationMechanism {
		return &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: secretsKey(tag + " primary"), SecondaryKey: secretsKey(tag + " secondary")}}
	}
	return &enrollment.IndividualEnrollment{RegistrationID: "secret-dev", Spec: enrollment.Spec{Attestation: sym("enrollment")}},
		&enrollment.IndividualEnrollment{RegistrationID: "secret-webhook-dev", Spec: enrollment.Spec{Attestation: sym("webhook enrollment"),
			AllocationPolicy:           enrollment.PolicyCustom,
			CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: secretsWebhook, APIVersion: "2021-10-01"}}},
		&enrollment.EnrollmentGroup{EnrollmentGroupID: "secret-group", Spec: enrollment.Spec{Attestation: sym("group")}},
		&enrollment.SharedAccessPolicy{KeyName: "secret-reader", PrimaryKey: secretsKey("policy primary"), SecondaryKey: secretsKey("policy secondary"), Rights: enrollment.RightEnrollmentRead},
		&enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}
}

func secretsKnownOf(caKey *ecdsa.PrivateKey) *secretsKnown {
	return &secretsKnown{
		enrollmentKeys: []string{secretsKey("enrollment primary"), secretsKey("enrollment secondary"), secretsKey("webhook enrollment primary"), secretsKey("webhook enrollment secondary")},
		groupKeys:      []string{secretsKey("group primary"), secretsKey("group secondary")},
		policyKeys:     []string{secretsKey("policy primary"), secretsKey("policy secondary")},
		webhookURL:     secretsWebhook,
		caKey:          caKey,
	}
}

// secretsCreate writes the known secrets through the service API.
func secretsCreate(t *testing.T, srv *zdpstest.Server) *secretsKnown {
	t.Helper()
	ctx := t.Context()
	cl := srv.Client()
	e, w, g, p, h := secretsDocs()
	if _, err := cl.PutHub(ctx, h, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutEnrollment(ctx, e, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutEnrollment(ctx, w, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutGroup(ctx, g, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutPolicy(ctx, p, ""); err != nil {
		t.Fatal(err)
	}
	k := secretsKnownOf(nil)
	k.owner = secretsOwnerKey(t, srv)
	return k
}

// secretsWriteLegacy writes the known secrets straight into a store with
// no KEK, in the clear, as zdps wrote them before they were sealed.
func secretsWriteLegacy(t *testing.T, st *store.Store) *secretsKnown {
	t.Helper()
	ctx := t.Context()
	e, w, g, p, h := secretsDocs()
	for _, err := range []error{
		secretsPut(ctx, st.Hubs, h), secretsPut(ctx, st.Enrollments, e), secretsPut(ctx, st.Enrollments, w),
		secretsPut(ctx, st.Groups, g), secretsPut(ctx, st.Policies, p),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return secretsKnownOf(nil)
}

func secretsPut[T store.Document](ctx context.Context, c *store.Collection[T], v T) error {
	_, err := c.Put(ctx, v, store.Condition{})
	return err
}

func secretsOwnerKey(t *testing.T, srv *zdpstest.Server) string {
	t.Helper()
	cs, err := client.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	if cs.SharedAccessKey == "" {
		t.Fatal("owner connection string without a key")
	}
	return cs.SharedAccessKey
}

// secretsUse proves the sealed secrets still work: the API answers them
// as written, devices register with the enrollment key and a key derived
// from the group key, and the policy's own key authenticates it.
func secretsUse(t *testing.T, srv *zdpstest.Server, k *secretsKnown) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cl := srv.Client() // the owner policy's key, sealed in the store
	keys, err := cl.EnrollmentKeys(ctx, "secret-dev")
	if err != nil {
		t.Fatal(err)
	}
	if keys.SymmetricKey.PrimaryKey != k.enrollmentKeys[0] || keys.SymmetricKey.SecondaryKey != k.enrollmentKeys[1] {
		t.Fatalf("enrollment keys read back as %+v", keys.SymmetricKey)
	}
	w, err := cl.GetEnrollment(ctx, "secret-webhook-dev")
	if err != nil {
		t.Fatal(err)
	}
	if w.CustomAllocationDefinition == nil || w.CustomAllocationDefinition.WebhookURL != k.webhookURL {
		t.Fatalf("webhook read back as %+v", w.CustomAllocationDefinition)
	}
	gk, err := cl.GroupKeys(ctx, "secret-group")
	if err != nil {
		t.Fatal(err)
	}
	if gk.SymmetricKey.PrimaryKey != k.groupKeys[0] {
		t.Fatalf("group key read back as %q", gk.SymmetricKey.PrimaryKey)
	}

	reader, err := client.New(client.Config{
		ConnectionString: instance.ConnectionString(srv.Client().HostName(), "secret-reader", k.policyKeys[1]),
		RootCAs:          srv.RootCAs(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetEnrollment(ctx, "secret-dev"); err != nil {
		t.Fatalf("the policy's secondary key does not authenticate: %v", err)
	}

	for _, d := range []struct {
		regID string
		key   []byte
	}{
		{"secret-dev", secretsDecode(t, k.enrollmentKeys[1])},
		{"secret-group-member-1", sas.DeriveDeviceKey(secretsDecode(t, k.groupKeys[0]), "secret-group-member-1")},
	} {
		res, err := device.Register(ctx, device.Config{
			Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: d.regID,
			SymmetricKey: d.key, RootCAs: srv.RootCAs(), MaxWait: time.Minute,
		})
		if err != nil {
			t.Fatalf("%s: %v\n%s", d.regID, err, srv.Logs())
		}
		if res.Status != enrollment.RegistrationAssigned || res.AssignedHub != "hub-1.example.net" {
			t.Fatalf("%s: %+v", d.regID, res)
		}
	}
	// A wrong key is still refused: the comparison is against the key,
	// not against whatever the store holds.
	if _, err := device.Register(ctx, device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: "secret-dev",
		SymmetricKey: []byte("not the enrollment key"), RootCAs: srv.RootCAs(), MaxWait: 10 * time.Second, MaxRetries: -1,
	}); err == nil {
		t.Fatal("a wrong key registered")
	}
}

func secretsDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretsBulk is the size of the store TestSecretsMigrationSurvivesKill
// seals: large enough that the migration reports progress (every 10,000
// records) well before it ends.
const secretsBulk = 30000

// TestSecretsMigrationSurvivesKill: zdps serve killed with SIGKILL in the
// middle of sealing a large plaintext store loses nothing; the next start
// seals only what was left, and every key still works.
func TestSecretsMigrationSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs zdps serve on 30,000 enrollments")
	}
	var known *secretsKnown
	env := secretsNewStore(t, "bolt", func(st *store.Store) {
		known = secretsWriteLegacy(t, st)
		err := st.Backend.Update(t.Context(), func(tx store.Tx) error {
			for i := range secretsBulk {
				e := &enrollment.IndividualEnrollment{RegistrationID: fmt.Sprintf("bulk-%05d", i), Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
					Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: secretsKey(fmt.Sprintf("bulk %05d", i))}}}}
				if _, err := st.Enrollments.In(tx).Put(t.Context(), e, store.Condition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	known.caKey = env.caKey

	// Run serve by hand: zdpstest.Start waits for a healthy server, which
	// is after the migration.
	dataDir := t.TempDir()
	cmd := exec.Command(zdpstest.Binary(t), "serve", "--mqtt-listen", "off", "--data-dir", dataDir, "--listen", "127.0.0.1:0",
		"--log-format", "json", "--store", env.storeArg, "--kek-file", env.kekFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen bytes.Buffer
	lines := bufio.NewScanner(out)
	killed := false
	for lines.Scan() {
		seen.Write(append(lines.Bytes(), '\n'))
		if bytes.Contains(lines.Bytes(), []byte("sealing secrets at rest, in progress")) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the migration reported no progress:\n%s", seen.String())
	}

	sealedN, plain := secretsCountSealed(t, env)
	if sealedN < 10000 || plain == 0 {
		t.Fatalf("after the kill: %d enrollments sealed, %d plaintext; want a migration cut halfway", sealedN, plain)
	}
	t.Logf("killed after %d of %d enrollments were sealed", sealedN, sealedN+plain)

	srv := zdpstest.Start(t, "--store", env.storeArg, "--kek-file", env.kekFile)
	if !srv.LogContains(fmt.Sprintf(`"bucket":"enrollments","scanned":%d,"sealed":%d`, sealedN+plain, plain)) {
		t.Fatalf("the restart did not seal exactly the %d left:\n%s", plain, srv.Logs())
	}
	known.owner = secretsOwnerKey(t, srv)
	secretsUse(t, srv, known)
	if k, err := srv.Client().EnrollmentKeys(t.Context(), "bulk-04242"); err != nil || k.SymmetricKey.PrimaryKey != secretsKey("bulk 04242") {
		t.Fatalf("a bulk enrollment's key after the resumed migration: %+v, %v", k, err)
	}
	srv.Stop()
	if found := secretsFind(append(seen.Bytes(), srv.Logs()...), known); len(found) > 0 {
		t.Fatalf("in the server's log: %s", strings.Join(found, "; "))
	}
	if s, p := secretsCountSealed(t, env); p != 0 || s != sealedN+plain {
		t.Fatalf("after the restart: %d sealed, %d plaintext", s, p)
	}
	raw := env.dump(t)
	secretsNoneInTheClear(t, raw, known)
	// And the bulk keys, sealed before the kill or after it: one in a
	// thousand, base64 and decoded (the old copies of the first ones were
	// left in free pages by the killed run, and overwritten by the next).
	for i := 0; i < secretsBulk; i += 1000 {
		k := secretsKey(fmt.Sprintf("bulk %05d", i))
		if bytes.Contains(raw, []byte(k)) || bytes.Contains(raw, secretsDecode(t, k)) {
			t.Fatalf("bulk-%05d's key is in the clear in the store", i)
		}
	}
}

// secretsCountSealed counts the stored enrollments whose keys are sealed
// and those still in the clear.
func secretsCountSealed(t *testing.T, env *secretsStore) (sealedN, plain int) {
	t.Helper()
	b, err := bolt.Open(strings.TrimPrefix(env.storeArg, "bolt:"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Check(); err != nil {
		t.Fatalf("bolt check: %v", err)
	}
	err = b.View(t.Context(), func(tx store.Tx) error {
		items, err := tx.Scan(t.Context(), store.BucketEnrollments, "", "", 0)
		for _, it := range items {
			if bytes.Contains(it.Value, []byte(`"primaryKey":"zdps:v1:`)) {
				sealedN++
			} else {
				plain++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sealedN, plain
}
