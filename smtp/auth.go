package smtp

import (
	"crypto/subtle"
	"errors"

	"github.com/emersion/go-sasl"
)

// loginMechanism is the name of the pre-standard AUTH LOGIN mechanism. Most cameras offer only
// it and PLAIN, and go-sasl has no server side for it.
const loginMechanism = "LOGIN"

var errLoginState = errors.New("smtp: AUTH LOGIN: unexpected response")

// loginServer is the server side of AUTH LOGIN: it asks for the username, then the password,
// each as a base64 challenge. A client may send the username as the initial response.
type loginServer struct {
	authenticate func(username, password string) error
	step         int
	username     string
}

var _ sasl.Server = (*loginServer)(nil)

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		s.username, s.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		s.username, s.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.authenticate(s.username, string(response))
	default:
		return nil, true, errLoginState
	}
}

// credentialsMatch compares in constant time, so the reply's timing does not reveal how much of
// a guess was right.
func credentialsMatch(wantUser, wantPass, user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(wantUser), []byte(user))
	p := subtle.ConstantTimeCompare([]byte(wantPass), []byte(pass))
	return u&p == 1
}
