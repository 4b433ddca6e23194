// Command awsendpoint is the node tier's way to AWS's public endpoints for
// a provider that, like AWS's own (ASCP), takes no endpoint settings: it
// resolves every name under amazonaws.com to its own address (DNS on UDP
// port 53), and serves HTTPS on port 443 with the certificate it is given,
// passing each request unchanged (Host header and signature included) to
// the tier's AWS fake. It stands where Route 53's resolver and AWS's load
// balancers stand; the AWS fake stays the only AWS.
//
//	awsendpoint -cert FILE -key FILE -upstream URL -ip ADDR
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

func main() {
	cert := flag.String("cert", "", "the serving certificate (PEM)")
	key := flag.String("key", "", "its key (PEM)")
	upstream := flag.String("upstream", "", "the AWS fake's URL")
	ip := flag.String("ip", os.Getenv("POD_IP"), "the IPv4 address every amazonaws.com name resolves to")
	flag.Parse()
	addr := net.ParseIP(*ip).To4()
	if addr == nil {
		log.Fatalf("awsendpoint: -ip %q is not an IPv4 address", *ip)
	}
	up, err := url.Parse(*upstream)
	if err != nil || up.Host == "" {
		log.Fatalf("awsendpoint: -upstream %q: %v", *upstream, err)
	}
	pc, err := net.ListenPacket("udp", ":53")
	if err != nil {
		log.Fatalf("awsendpoint: %v", err)
	}
	go serveDNS(pc, [4]byte(addr))
	proxy := httputil.NewSingleHostReverseProxy(up) // keeps the request's Host
	srv := &http.Server{Addr: ":443", Handler: proxy, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	log.Printf("awsendpoint: amazonaws.com names resolve to %s; HTTPS on :443 goes to %s", addr, up)
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}

// serveDNS answers A queries for names under amazonaws.com with addr,
// every other query with no answer (AAAA included, so clients use IPv4),
// and names outside amazonaws.com with NXDOMAIN.
func serveDNS(pc net.PacketConn, addr [4]byte) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			log.Printf("awsendpoint: dns: %v", err)
			continue
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		name := strings.ToLower(q.Name.String())
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
		ours := name == "amazonaws.com." || strings.HasSuffix(name, ".amazonaws.com.")
		if !ours {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		if ours && q.Type == dnsmessage.TypeA {
			_ = b.StartAnswers()
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: addr})
		}
		out, err := b.Finish()
		if err != nil {
			log.Printf("awsendpoint: dns: %v", err)
			continue
		}
		if _, err := pc.WriteTo(out, from); err != nil {
			log.Printf("awsendpoint: dns: %v", err)
		}
		fmt.Fprintf(os.Stderr, "awsendpoint: dns %s %s\n", q.Type, name)
	}
}
