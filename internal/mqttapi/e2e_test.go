package mqttapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// answer is one response PUBLISH.
type answer struct {
	Status     int
	RID        string
	RetryAfter string
	Body       map[string]any
	Raw        string
}

var responseTopic = regexp.MustCompile(`^\$dps/registrations/res/(\d+)/\?(.*)$`)

// device is a paho client connected to zdps, subscribed to the answers.
type device struct {
	t       *testing.T
	c       mqtt.Client
	answers chan answer
	rid     atomic.Int64
}

type dialOpts struct {
	broker   string // tls://host:port or wss://host:port/$iothub/websocket
	regID    string
	userName string
	password string
	tls      *tls.Config
}

func connect(t *testing.T, o dialOpts) (*device, error) {
	t.Helper()
	d := &device{t: t, answers: make(chan answer, 16)}
	opts := mqtt.NewClientOptions().AddBroker(o.broker).SetClientID(o.regID).SetUsername(o.userName).SetPassword(o.password).
		SetTLSConfig(o.tls).SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second)
	d.c = mqtt.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { d.c.Disconnect(100) })
	sub := d.c.Subscribe("$dps/registrations/res/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		a := answer{Raw: string(m.Payload())}
		if g := responseTopic.FindStringSubmatch(m.Topic()); g != nil {
			a.Status, _ = strconv.Atoi(g[1])
			q, _ := url.ParseQuery(g[2])
			a.RID, a.RetryAfter = q.Get("$rid"), q.Get("retry-after")
			if !strings.HasPrefix(g[2], "$rid=") || (a.RetryAfter != "" && !strings.HasSuffix(g[2], "&retry-after="+a.RetryAfter)) {
				a.RID = "$rid not first or retry-after not last: " + g[2]
			}
		}
		_ = json.Unmarshal(m.Payload(), &a.Body)
		d.answers <- a
	})
	if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
		return nil, fmt.Errorf("subscribe: %v", sub.Error())
	}
	return d, nil
}

func (d *device) request(topic string, qos byte, body string) answer {
	d.t.Helper()
	rid := strconv.FormatInt(d.rid.Add(1), 10)
	tok := d.c.Publish(strings.ReplaceAll(topic, "{rid}", rid), qos, false, body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case a := <-d.answers:
		if a.RID != rid {
			d.t.Fatalf("answer $rid %q, want %q (topic order or echo)", a.RID, rid)
		}
		return a
	case <-time.After(30 * time.Second):
		d.t.Fatal("no answer within 30s")
	}
	return answer{}
}

func (d *device) register(body string) answer {
	return d.request("$dps/registrations/PUT/iotdps-register/?$rid={rid}", 1, body)
}

func (d *device) poll(opID string) answer {
	return d.request("$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId="+opID, 0, "")
}

func userName(scope, regID string) string {
	return scope + "/registrations/" + regID + "/api-version=2019-03-31&ClientVersion=zdps-test%2F1"
}

func sasFor(key []byte, scope, regID string, skn string) string {
	return sas.Build(key, scope+"/registrations/"+regID, skn, time.Now().Add(time.Hour))
}

// start runs zdps serve with a linked hub.
func start(t *testing.T, extra ...string) *zdpstest.Server {
	t.Helper()
	srv := zdpstest.Start(t, extra...)
	if _, err := srv.Client().PutHub(context.Background(), &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestRegisterSymmetricKeyOverMQTT(t *testing.T) {
	srv := start(t)
	scope := srv.IDScope()
	for _, tc := range []struct {
		name, broker, skn string
	}{
		{"tls skn", "tls://" + srv.MQTTAddr(), "registration"},
		{"tls no skn", "tls://" + srv.MQTTAddr(), ""},
		{"websocket", "wss://" + srv.Addr() + "/$iothub/websocket", "registration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			regID := "sym-" + strings.ReplaceAll(tc.name, " ", "-")
			key := srv.SymmetricKeyEnrollment(regID)
			d, err := connect(t, dialOpts{broker: tc.broker, regID: regID, userName: userName(scope, regID), password: sasFor(key, scope, regID, tc.skn), tls: srv.TLSConfig()})
			if err != nil {
				t.Fatal(err)
			}
			a := d.register(`{"registrationId":"` + regID + `"}`)
			if a.Status != 200 || a.Body["status"] != "assigned" {
				t.Fatalf("register answered %d %s", a.Status, a.Raw)
			}
			state, _ := a.Body["registrationState"].(map[string]any)
			if state["registrationId"] != regID || state["assignedHub"] != "hub-1.example.net" {
				t.Fatalf("registrationState %v", state)
			}
			// A blank body (older SDKs) takes the ID from CONNECT.
			if a := d.register(""); a.Status != 200 || a.Body["status"] != "assigned" {
				t.Fatalf("blank register answered %d %s", a.Status, a.Raw)
			}
		})
	}
}
