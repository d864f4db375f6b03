package deviceapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/zdps/zdps/internal/deviceapi"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/pkg/enrollment"
)

// tpmFake answers the first round with a challenge and the second with an
// assigned operation carrying the second blob.
type tpmFake struct{}

func (tpmFake) Register(_ context.Context, req *port.Request) (*enrollment.Operation, error) {
	if req.Authorization == "" {
		return nil, port.Refuse("TPM challenge issued", &port.TPMChallenge{AuthenticationKey: "QkxPQjE="})
	}
	return &enrollment.Operation{OperationID: "op1", RegistrationID: req.RegistrationID, Status: enrollment.RegistrationAssigned,
		Registration:         &enrollment.Registration{RegistrationID: req.RegistrationID, DeviceID: "d", AssignedHub: "h", Status: enrollment.RegistrationAssigned, AttestationType: enrollment.AttestationTPM},
		TPMAuthenticationKey: "QkxPQjI="}, nil
}

func (tpmFake) OperationStatus(context.Context, *port.Request, string) (*enrollment.Operation, error) {
	return nil, port.ErrNotFound
}

func (tpmFake) Status(context.Context, *port.Request) (*enrollment.Registration, error) {
	return nil, port.ErrNotFound
}

func TestTPMChallengeAndAssignedKey(t *testing.T) {
	api, err := deviceapi.New(deviceapi.Config{Provisioner: tpmFake{}, IDScope: "0ne1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	body := `{"registrationId":"dev","tpm":{"endorsementKey":"AAE=","storageRootKey":"AAE="}}`
	tests := []struct {
		name   string
		auth   string
		status int
		want   string
	}{
		{"first round", "", http.StatusUnauthorized, `{"authenticationKey":"QkxPQjE=","keyName":"registration","message":"`},
		{"second round", "SharedAccessSignature sr=x&sig=y&se=1", http.StatusOK, `"tpm":{"authenticationKey":"QkxPQjI="}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPut, srv.URL+"/0ne1/registrations/dev/register?api-version=2019-03-31", strings.NewReader(body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
				t.Fatalf("%d %s, want %d with %s", resp.StatusCode, b, tt.status, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Fatalf("Content-Type %q", ct)
			}
			if !json.Valid(b) {
				t.Fatal(fmt.Sprintf("not JSON: %s", b))
			}
		})
	}
}
