package devicecmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// NewDeviceCmd is `zdps device`.
func NewDeviceCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "device", "Act as a device: register with a provisioning service", nil, newDeviceRegisterCmd)
}

// deviceRegisterConfig is the configuration of `zdps device register`.
type deviceRegisterConfig struct {
	Endpoint       string
	IDScope        string
	RegistrationID string
	// Key and GroupKey are base64, as the service API hands them out.
	Key      string
	GroupKey string
	CertFile string
	KeyFile  string
	Payload  string
	NoCSR    bool
	OutCert  string
	OutKey   string
	Timeout  time.Duration
	// TPM selects the device's TPM (tpm.go); "" without --tpm.
	TPM string
	// EKCert is a PEM or DER file of the TPM's EK certificate.
	EKCert string
	// Transport is https, mqtt or mqtt-ws.
	Transport string
}

func newDeviceRegisterCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg deviceRegisterConfig
	cmd := &cobra.Command{
		Use:   "register --registration-id ID (--key B64 | --group-key B64 | --cert FILE --key-file FILE | --tpm [DEVICE]) [flags]",
		Short: "Register as a device over HTTPS or MQTT and save the issued certificate",
		Long: `Register as a device, exactly as a device at first boot would (the DPS device API
over HTTPS, or with --transport mqtt over MQTT 3.1.1 on TLS, port 8883 unless
--endpoint names one, or with --transport mqtt-ws over MQTT on a WebSocket at
/$iothub/websocket on the HTTPS port), and print the assignment: hub, device ID,
substatus. TPM attestation is offered over HTTPS only.

The device proves its identity with its symmetric key (--key), with a key derived
from an enrollment group's key (--group-key), or with an X.509 certificate and its
private key (--cert, --key-file; the certificate file may hold the leaf followed by
intermediates), or with its TPM (--tpm: the Azure TPM flow, EK challenge then a SAS
signed by the TPM; the registration ID defaults to the EK's, see "zdps tpm ek").
Unless --no-csr is given, a P-256 key and a CSR are generated and
the issued certificate chain is written to --out-cert (PEM, leaf first) and the key
to --out-key (PKCS#8 PEM, mode 0600).

--endpoint and --id-scope default to the service named by the connection string
(see "zdps --help"), when one is available; a device normally passes both.
Throttling (429), server faults (5xx) and network errors are retried with backoff
until --timeout.`,
		Example: `  zdps device register --endpoint dps.example.net --id-scope 0ne00000001 \
      --registration-id sensor-17 --key "$DEVICE_KEY"
  zdps device register --registration-id sensor-18 --group-key "$GROUP_KEY" -o json
  zdps device register --transport mqtt --endpoint dps.example.net --id-scope 0ne00000001 \
      --registration-id sensor-20 --key "$DEVICE_KEY"
  zdps device register --endpoint dps.example.net --id-scope 0ne00000001 \
      --cert sensor-19-chain.pem --key-file sensor-19.key --no-csr`,
		Args: func(cmd *cobra.Command, args []string) error {
			// --tpm takes an optional value, so "--tpm unix:PATH" parses as
			// --tpm (the default device) and an argument: take the
			// argument as the TPM it names.
			if len(args) == 1 && cmd.Flags().Changed("tpm") && cfg.TPM == device.DefaultTPMPath && isTPMSpec(args[0]) {
				cfg.TPM = args[0]
				return nil
			}
			return cobra.NoArgs(cmd, args)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDeviceRegister(cmd, g, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Endpoint, "endpoint", "", "host[:port] of the provisioning service (default: the connection string's HostName)")
	f.StringVar(&cfg.IDScope, "id-scope", "", "ID scope of the provisioning service (default: read from the service with the connection string)")
	f.StringVar(&cfg.RegistrationID, "registration-id", "", "registration ID of the device (default with --cert: the certificate's common name)")
	f.StringVar(&cfg.Key, "key", "", "the device's symmetric key, base64")
	f.StringVar(&cfg.GroupKey, "group-key", "", "an enrollment group's symmetric key, base64; the device key is derived from it")
	f.StringVar(&cfg.CertFile, "cert", "", "PEM file with the device certificate (leaf first, then any intermediates)")
	f.StringVar(&cfg.KeyFile, "key-file", "", "PEM file with the private key of --cert")
	f.StringVar(&cfg.Payload, "payload", "", "registration payload, a JSON value")
	f.BoolVar(&cfg.NoCSR, "no-csr", false, "do not generate a key and CSR (no certificate is issued)")
	f.StringVar(&cfg.OutCert, "out-cert", "", "file for the issued certificate chain, PEM (default <registration-id>.pem)")
	f.StringVar(&cfg.OutKey, "out-key", "", "file for the generated private key, PKCS#8 PEM, mode 0600 (default <registration-id>.key)")
	f.StringVar(&cfg.TPM, "tpm", "", tpmFlagHelp)
	f.Lookup("tpm").NoOptDefVal = device.DefaultTPMPath
	f.StringVar(&cfg.EKCert, "ek-certificate", "", "with --tpm: the TPM's EK certificate, sent for zdps to check against its TPM manufacturer roots: a PEM or DER file, or \""+ekCertFromTPM+"\" to read it from the TPM's NV memory")
	f.StringVar(&cfg.Transport, "transport", device.TransportHTTPS, "https, mqtt (MQTT 3.1.1 over TLS, port 8883 by default) or mqtt-ws (MQTT over a WebSocket on the HTTPS port)")
	f.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "give up the registration after this long, retries and polling included")
	return cmd
}

func runDeviceRegister(cmd *cobra.Command, g *cmdutil.Globals, cfg deviceRegisterConfig) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	dc, err := cfg.deviceConfig()
	if err != nil {
		return err
	}
	if dc.Endpoint, dc.IDScope, err = g.DeviceService(cmd.Context(), cfg.Endpoint, cfg.IDScope); err != nil {
		return err
	}
	if dc.Transport == device.TransportMQTT && cfg.Endpoint == "" {
		// The connection string names the HTTPS listener; MQTT has its own
		// port.
		dc.Endpoint = mqttEndpoint(dc.Endpoint)
	}
	if dc.RootCAs, err = g.RootCAs(); err != nil {
		return err
	}
	if cfg.OutCert == "" {
		cfg.OutCert = dc.RegistrationID + ".pem"
	}
	if cfg.OutKey == "" {
		cfg.OutKey = dc.RegistrationID + ".key"
	}
	if dc.GenerateKey && filepath.Clean(cfg.OutCert) == filepath.Clean(cfg.OutKey) {
		return cmdutil.Errorf(nil, "--out-cert and --out-key name the same file %s", cfg.OutCert)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), cfg.Timeout)
	defer cancel()
	res, err := device.Register(ctx, dc)
	if err != nil {
		return deviceFail(err, dc, cfg.Timeout)
	}
	out := deviceRegisterOutput{
		RegistrationID:    res.RegistrationID,
		Status:            res.Status,
		AssignedHub:       res.AssignedHub,
		DeviceID:          res.DeviceID,
		Substatus:         res.Substatus,
		EnrollmentGroupID: res.EnrollmentGroupID,
		OperationID:       res.OperationID,
		Payload:           res.Payload,
	}
	if dc.GenerateKey {
		if len(res.IssuedCertificateChain) == 0 {
			return cmdutil.Errorf(nil, "register device %q: assigned to %s as %q, but the service issued no certificate for the CSR (pass --no-csr to register without one)", dc.RegistrationID, res.AssignedHub, res.DeviceID)
		}
		if err := writeIssued(res, cfg.OutCert, cfg.OutKey); err != nil {
			return err
		}
		leaf := res.IssuedCertificateChain[0]
		out.CertificateFile, out.KeyFile = cfg.OutCert, cfg.OutKey
		out.Certificate = &issuedCertificate{
			Subject:      leaf.Subject.String(),
			Issuer:       leaf.Issuer.String(),
			SerialNumber: fmt.Sprintf("%X", leaf.SerialNumber),
			NotBefore:    leaf.NotBefore.UTC(),
			NotAfter:     leaf.NotAfter.UTC(),
		}
	}
	p := g.Printer(cmd.OutOrStdout())
	if p.JSON {
		return p.PrintJSON(out)
	}
	var certLine string
	if c := out.Certificate; c != nil {
		certLine = fmt.Sprintf("%s (%s, expires %s)", out.CertificateFile, c.Subject, c.NotAfter.Format(time.RFC3339))
	}
	payload := ""
	if len(out.Payload) > 0 {
		payload = string(out.Payload)
	}
	return p.Details(
		"Registration ID", out.RegistrationID,
		"Status", out.Status,
		"Assigned hub", out.AssignedHub,
		"Device ID", out.DeviceID,
		"Substatus", out.Substatus,
		"Enrollment group", out.EnrollmentGroupID,
		"Payload", payload,
		"Certificate", certLine,
		"Private key", out.KeyFile,
	)
}

// deviceRegisterOutput is what `zdps device register -o json` prints.
type deviceRegisterOutput struct {
	RegistrationID    string             `json:"registrationId"`
	Status            string             `json:"status"`
	AssignedHub       string             `json:"assignedHub"`
	DeviceID          string             `json:"deviceId"`
	Substatus         string             `json:"substatus,omitempty"`
	EnrollmentGroupID string             `json:"enrollmentGroupId,omitempty"`
	OperationID       string             `json:"operationId,omitempty"`
	Payload           json.RawMessage    `json:"payload,omitempty"`
	CertificateFile   string             `json:"certificateFile,omitempty"`
	KeyFile           string             `json:"keyFile,omitempty"`
	Certificate       *issuedCertificate `json:"certificate,omitempty"`
}

type issuedCertificate struct {
	Subject      string    `json:"subject"`
	Issuer       string    `json:"issuer"`
	SerialNumber string    `json:"serialNumber"`
	NotBefore    time.Time `json:"notBefore"`
	NotAfter     time.Time `json:"notAfter"`
}

// ekCertFromTPM as --ek-certificate reads the certificate from the TPM.
const ekCertFromTPM = "tpm"

// deviceConfig checks the flags that need no service and builds the SDK
// configuration from them. Key values never appear in messages.
func (cfg deviceRegisterConfig) deviceConfig() (device.Config, error) {
	dc := device.Config{RegistrationID: cfg.RegistrationID, GenerateKey: !cfg.NoCSR, MaxWait: cfg.Timeout, Transport: strings.ToLower(cfg.Transport)}
	switch dc.Transport {
	case device.TransportHTTPS, device.TransportMQTT, device.TransportMQTTWS:
	default:
		return dc, cmdutil.Errorf(nil, "--transport %q: want https, mqtt or mqtt-ws", cfg.Transport)
	}
	if cfg.TPM != "" && dc.Transport != device.TransportHTTPS {
		return dc, cmdutil.Errorf(nil, "--tpm registers over HTTPS only (DPS offers no TPM attestation over MQTT): drop --transport %s", cfg.Transport)
	}
	n := 0
	for _, set := range []bool{cfg.Key != "", cfg.GroupKey != "", cfg.CertFile != "" || cfg.KeyFile != "", cfg.TPM != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return dc, cmdutil.Errorf(nil, "give exactly one of --key, --group-key, or --cert with --key-file, or --tpm")
	}
	if cfg.EKCert != "" && cfg.TPM == "" {
		return dc, cmdutil.Errorf(nil, "--ek-certificate goes with --tpm")
	}
	if cfg.Timeout <= 0 {
		return dc, cmdutil.Errorf(nil, "--timeout must be positive")
	}
	var err error
	switch {
	case cfg.Key != "":
		if dc.SymmetricKey, err = decodeKeyFlag("--key", cfg.Key); err != nil {
			return dc, err
		}
	case cfg.GroupKey != "":
		if dc.GroupKey, err = decodeKeyFlag("--group-key", cfg.GroupKey); err != nil {
			return dc, err
		}
	case cfg.TPM != "":
		d, err := openTPM(cfg.TPM)
		if err != nil {
			return dc, err
		}
		if dc.RegistrationID == "" {
			dc.RegistrationID = d.RegistrationID()
		}
		dc.TPM = d
		switch cfg.EKCert {
		case "":
		case ekCertFromTPM:
			if dc.TPMEKCertificate, err = d.EKCertificate(); err != nil {
				return dc, cmdutil.Errorf(err, "--ek-certificate tpm: %v", err)
			}
		default:
			c, err := cmdutil.ReadCertificateText(cfg.EKCert)
			if err != nil {
				return dc, err
			}
			dc.TPMEKCertificate, _ = enrollment.CertificateDER(c)
		}
	default:
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return dc, cmdutil.Errorf(nil, "--cert and --key-file go together")
		}
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return dc, cmdutil.Errorf(err, "device certificate %s with key %s: %v", cfg.CertFile, cfg.KeyFile, err)
		}
		if dc.RegistrationID == "" {
			dc.RegistrationID = cert.Leaf.Subject.CommonName
		}
		dc.Certificate = &cert
	}
	if dc.RegistrationID == "" {
		return dc, cmdutil.Errorf(nil, "--registration-id is required")
	}
	if err := enrollment.ValidateRegistrationID(dc.RegistrationID); err != nil {
		return dc, cmdutil.Errorf(err, "%v", err)
	}
	if cfg.Payload != "" {
		if !json.Valid([]byte(cfg.Payload)) {
			return dc, cmdutil.Errorf(nil, "--payload is not valid JSON")
		}
		dc.Payload = json.RawMessage(cfg.Payload)
	}
	if cfg.NoCSR && (cfg.OutCert != "" || cfg.OutKey != "") {
		return dc, cmdutil.Errorf(nil, "--out-cert and --out-key need a CSR: drop --no-csr")
	}
	return dc, nil
}

// mqttEndpoint is host:8883 for the host of an HTTPS endpoint.
func mqttEndpoint(httpsEndpoint string) string {
	host := strings.TrimSuffix(strings.TrimPrefix(httpsEndpoint, "https://"), "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "8883")
}

func decodeKeyFlag(flag, v string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || len(b) == 0 {
		return nil, cmdutil.Errorf(nil, "%s must be a base64 key", flag)
	}
	return b, nil
}

// deviceFail turns an SDK error into one line for people.
func deviceFail(err error, dc device.Config, timeout time.Duration) error {
	what := fmt.Sprintf("register device %q at %s", dc.RegistrationID, dc.Endpoint)
	var e *device.Error
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.Is(err, device.ErrUnauthorized):
		how := "the key"
		if dc.Certificate != nil {
			how = "the certificate"
		}
		return cmdutil.Errorf(err, "%s: unauthorized: the service did not accept %s, or has no enabled enrollment for this registration ID%s", what, how, tracking(err))
	case errors.Is(err, device.ErrDisabled):
		return cmdutil.Errorf(err, "%s: the enrollment is disabled", what)
	case errors.Is(err, device.ErrFailed) && errors.As(err, &e):
		return cmdutil.Errorf(err, "%s: registration failed (errorCode %d): %s", what, e.ErrorCode, cmdutil.OrDefault(e.Message, "no reason given"))
	case errors.Is(err, device.ErrNotFound):
		return cmdutil.Errorf(err, "%s: not found: no provisioning service with ID scope %q there%s", what, dc.IDScope, tracking(err))
	case errors.Is(err, context.DeadlineExceeded):
		return cmdutil.Errorf(err, "%s: no answer within --timeout %s: %v", what, timeout, err)
	case errors.As(err, &unknown), errors.As(err, &verify):
		return cmdutil.Errorf(err, "%s: the server's certificate is not trusted (pass its CA bundle with --ca-file): %s", what, strings.TrimPrefix(err.Error(), "device: "))
	}
	return cmdutil.Errorf(err, "%s: %s", what, strings.TrimPrefix(err.Error(), "device: "))
}

func tracking(err error) string {
	var e *device.Error
	if errors.As(err, &e) && e.TrackingID != "" {
		return " [trackingId " + e.TrackingID + "]"
	}
	return ""
}

// writeIssued writes the chain and the key, each to a temporary file in
// the target's directory that is then renamed over it, so a crash never
// leaves half a key. The key file is created 0600.
func writeIssued(res *device.Result, certPath, keyPath string) error {
	var chain []byte
	for _, c := range res.IssuedCertificateChain {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(res.PrivateKey)
	if err != nil {
		return cmdutil.Errorf(err, "encoding the private key: %v", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	keyTmp, err := writeTemp(keyPath, keyPEM, 0o600)
	if err != nil {
		return err
	}
	certTmp, err := writeTemp(certPath, chain, 0o644)
	if err != nil {
		os.Remove(keyTmp)
		return err
	}
	if err := os.Rename(keyTmp, keyPath); err != nil {
		os.Remove(keyTmp)
		os.Remove(certTmp)
		return cmdutil.Errorf(err, "writing the private key: %v", err)
	}
	if err := os.Rename(certTmp, certPath); err != nil {
		os.Remove(certTmp)
		return cmdutil.Errorf(err, "writing the certificate: %v", err)
	}
	return nil
}

func writeTemp(path string, data []byte, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", cmdutil.Errorf(err, "writing %s: %v", path, err)
	}
	name := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", cmdutil.Errorf(err, "writing %s: %v", path, err)
	}
	return name, nil
}
