package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/client/clienttest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// A manufacturer's tool creates an enrollment, reads its generated keys
// and handles "already exists" without string matching.
func Example() {
	srv := clienttest.Start() // stands in for a zdps server
	defer srv.Close()

	c, err := client.New(client.Config{
		ConnectionString: srv.ConnectionString(), // as written by zdps serve
		RootCAs:          srv.CertPool(),         // the server's ca-bundle.pem
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	e := &enrollment.IndividualEnrollment{
		RegistrationID: "sensor-0001", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}},
	}
	res, err := c.BulkEnrollments(ctx, enrollment.BulkCreate, []*enrollment.IndividualEnrollment{e, e})
	if err != nil {
		log.Fatal(err)
	}
	for _, item := range res.Errors {
		fmt.Printf("%s: code %d\n", item.RegistrationID, item.ErrorCode)
	}

	keys, err := c.EnrollmentKeys(ctx, "sensor-0001")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("primary key generated:", keys.SymmetricKey.PrimaryKey != "")

	_, err = c.GetEnrollment(ctx, "sensor-9999")
	fmt.Println("missing:", errors.Is(err, client.ErrNotFound), "retry helps:", client.IsTransient(err))
	// Output:
	// sensor-0001: code 409201
	// primary key generated: true
	// missing: true retry helps: false
}
