package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Roles a connection of this package claims in its NATS user name
// "<role>.<queue name>.<secret>" (see identity): the embedded server gives
// each role the permissions below and nothing more.
const (
	roleClient = "client" // Connect's own connection, Status
	roleHost   = "host"   // Serve, and Connect's local workers
	roleHead   = "head"   // the process that runs the embedded server
)

// identity is how one connection names itself to the server. Its secret
// is sent only in the CONNECT (as part of the user name) and never on a
// subject: the server derives pub from it, and pub is the connection's
// id in subjects (a client's results subject, its task subjects) and its
// inbox prefix. Only the holder of the secret may subscribe to its
// inbox and its results, so nobody else reads the tasks a host pulls
// or the results a client gets.
type identity struct {
	role   string
	secret string
	pub    string
}

func newIdentity(role string) identity {
	s := newID()
	return identity{role: role, secret: s, pub: pubID(s)}
}

// pubID is the public id of a connection whose secret is s.
func pubID(s string) string {
	sum := sha256.Sum256([]byte("multiproc cluster id\x00" + s))
	return hex.EncodeToString(sum[:9])
}

// user is the connection's NATS user name on the queue name; the head's
// is the same for every queue.
func (id identity) user(name string) string {
	if id.role == roleHead {
		name = ""
	}
	return id.role + "." + name + "." + id.secret
}

// inbox is the connection's inbox prefix (nats.CustomInboxPrefix): the
// replies of its pulls, its JetStream API calls and its pings.
func (id identity) inbox() string { return inboxPrefix(id.pub) }

func inboxPrefix(pub string) string { return "_MP." + pub }

// authenticator is the embedded server's access control. A connection
// must present the Token, if there is one (as its token or as its
// password), and a user name "<role>.<name>.<secret>" (identity): it
// gets the permissions of its role on the queue <name>, tied to the id
// its secret gives. The head (the process that runs the server) has a
// secret of its own, made at start, and full rights. Anything else is
// refused.
type authenticator struct {
	token string
	head  string // the head's user name
}

func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if a.token != "" {
		ok := subtle.ConstantTimeCompare([]byte(o.Token), []byte(a.token)) == 1 ||
			subtle.ConstantTimeCompare([]byte(o.Password), []byte(a.token)) == 1
		if !ok {
			return false
		}
	}
	if subtle.ConstantTimeCompare([]byte(o.Username), []byte(a.head)) == 1 {
		c.RegisterUser(&server.User{Username: roleHead})
		return true
	}
	role, rest, ok := strings.Cut(o.Username, ".")
	if !ok {
		return false
	}
	name, secret, ok := strings.Cut(rest, ".")
	if !ok || validName(name) != nil || len(secret) < 16 || len(secret) > 64 {
		return false
	}
	var p *server.Permissions
	switch role {
	case roleClient:
		p = clientPermissions(newSubjects(name, "*"), pubID(secret))
	case roleHost:
		p = hostPermissions(newSubjects(name, "*"), pubID(secret))
	default:
		return false
	}
	c.RegisterUser(&server.User{Username: role + "." + name + "." + pubID(secret), Permissions: p})
	return true
}

// clientPermissions: submit tasks under its own id (of any build),
// cancel its own tasks (on its own cancel subject, which hosts check
// against the keys) and ask the head to purge them (on its own purge
// subject: see Cluster.purge), read its own results and its own inbox,
// hear and ping hosts, hear the server's max-deliveries advisories, read
// the queue's state. Not: read tasks, purge, create, change or delete
// streams or consumers, pull tasks, answer them, cancel or purge another
// client's tasks. s is made with build "*".
func clientPermissions(s subjects, pub string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: append([]string{
			s.tasks + pub + ".>",
			s.cancel + pub,
			s.purge + pub,
			s.ping,
			"$JS.API.STREAM.INFO." + s.name,
			"$JS.API.CONSUMER.INFO." + s.name + ".*",
			"$JS.API.CONSUMER.LIST." + s.name,
		}, blobPermissions(s)...)},
		Subscribe: &server.SubjectPermission{Allow: []string{
			inboxPrefix(pub) + ".>",
			s.results + pub,
			s.hosts,
			maxDeliveriesPrefix + s.name + ".*",
		}},
	}
}

// hostPermissions: make its build's consumer (the stream bounds their
// count), pull tasks from it and acknowledge them, announce itself,
// answer pings, hear cancels, publish results (which callers accept only
// with the proof that the task was delivered to it: see resultMAC). Not:
// submit tasks, read anyone's results or inbox, manage the stream. s is
// made with build "*".
func hostPermissions(s subjects, pub string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: append([]string{
			s.results + "*",
			s.hosts,
			"$JS.API.STREAM.INFO." + s.name,
			"$JS.API.CONSUMER.CREATE." + s.name + ".>",
			"$JS.API.CONSUMER.DURABLE.CREATE." + s.name + ".*",
			"$JS.API.CONSUMER.INFO." + s.name + ".*",
			"$JS.API.CONSUMER.MSG.NEXT." + s.name + ".*",
			"$JS.ACK." + s.name + ".>",
		}, blobPermissions(s)...)},
		Subscribe: &server.SubjectPermission{Allow: []string{
			inboxPrefix(pub) + ".>",
			s.cancel + "*",
			s.ping,
		}},
		// Answers to pings go to the pinger's inbox.
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// secretLen is the size of a task's secret.
const secretLen = 16

// resultMAC is the proof a result carries that its sender was given the
// task: an HMAC, under the task's secret, of the task's key and the
// result's bytes. The secret travels only inside the task, which only
// the host it is delivered to can read.
func resultMAC(secret []byte, key string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(key))
	m.Write([]byte{0})
	m.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:16])
}

// validMAC reports whether mac is resultMAC(secret, key, body).
func validMAC(secret []byte, key string, body []byte, mac string) bool {
	return len(mac) == 32 && hmac.Equal([]byte(mac), []byte(resultMAC(secret, key, body)))
}
