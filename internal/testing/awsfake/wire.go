package awsfake

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"time"
)

// replier writes an answer in the protocol of the service asked: REST-JSON
// for EKS, the query protocol's XML for IAM.
type replier struct {
	w         http.ResponseWriter
	iam       bool
	action    string
	requestID string
}

const iamNamespace = "https://iam.amazonaws.com/doc/2010-05-08/"

// iamResponse is the envelope of an IAM answer:
// <ActionResponse><ActionResult>...</ActionResult><ResponseMetadata>.
// Result's own XMLName names its element.
type iamResponse struct {
	XMLName   xml.Name
	Xmlns     string `xml:"xmlns,attr"`
	Result    any
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// iamErrorResponse is the query protocol's error document.
type iamErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (r replier) ok(out any) {
	if r.iam {
		r.xml(http.StatusOK, iamResponse{
			XMLName:   xml.Name{Local: r.action + "Response"},
			Xmlns:     iamNamespace,
			Result:    out,
			RequestID: r.requestID,
		})
		return
	}
	if out == nil {
		out = struct{}{}
	}
	r.json(http.StatusOK, out)
}

// error writes a refusal. EKS names the error in the X-Amzn-Errortype
// header and carries the message in the body; IAM puts both in the
// ErrorResponse document, with Type Sender for the caller's faults and
// Receiver for the service's own.
func (r replier) error(e *APIError) {
	if r.iam {
		fault := "Sender"
		if e.StatusCode >= 500 {
			fault = "Receiver"
		}
		r.xml(e.StatusCode, iamErrorResponse{
			Xmlns: iamNamespace, Type: fault, Code: e.Code, Message: e.Message, RequestID: r.requestID,
		})
		return
	}
	r.w.Header().Set("X-Amzn-Errortype", e.Code)
	r.json(e.StatusCode, map[string]string{"message": e.Message})
}

func (r replier) json(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// The fake's own answer types always marshal; a failure is a bug.
		panic("awsfake: encoding an answer: " + err.Error())
	}
	r.w.Header().Set("Content-Type", "application/json")
	r.w.Header().Set("X-Amzn-Requestid", r.requestID)
	r.w.WriteHeader(status)
	_, _ = r.w.Write(b)
}

func (r replier) xml(status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		panic("awsfake: encoding an answer: " + err.Error())
	}
	r.w.Header().Set("Content-Type", "text/xml")
	r.w.Header().Set("X-Amzn-Requestid", r.requestID)
	r.w.WriteHeader(status)
	_, _ = r.w.Write([]byte(xml.Header))
	_, _ = r.w.Write(b)
}

// epoch is a timestamp as REST-JSON carries it: seconds since the epoch,
// with the milliseconds as a fraction.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	return json.Marshal(float64(time.Time(t).UnixMilli()) / 1000)
}
