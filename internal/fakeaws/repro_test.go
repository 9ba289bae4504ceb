package fakeaws

import (
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime/debug"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

type logConn struct{ net.Conn; reading atomic.Bool }

func (c *logConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		println("WRITE ERR", err.Error())
	}
	return n, err
}

func (c *logConn) Close() error {
	_ = debug.Stack
	_ = 0
	return c.Conn.Close()
}

type traceRT struct{ rt http.RoundTripper }

func (t traceRT) RoundTrip(r *http.Request) (*http.Response, error) {
	tr := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err != nil {
			_ = i
		}
	}}
	return t.rt.RoundTrip(r.WithContext(httptrace.WithClientTrace(r.Context(), tr)))
}

func TestRepro(t *testing.T) {
	s := newFake(t)
	tr := &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, n, a)
		return &logConn{Conn: c}, err
	}}
	c := ec2.NewFromConfig(sdkConfig(), func(o *ec2.Options) { o.BaseEndpoint = aws.String(s.URL()); o.HTTPClient = &http.Client{Transport: traceRT{tr}} })
	in := launchInput("")
	in.MaxCount = aws.Int32(12)
	if _, err := c.RunInstances(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{}); err != nil {
			t.Fatal(i, err)
		}
	}
}
