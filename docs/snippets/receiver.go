// A webhook endpoint that checks Outpost signatures (Go standard library only).
// Run it with the destination's secret: WEBHOOK_SECRET=whsec_... PORT=8000 go run receiver.go
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// The whole secret, "whsec_" included.
var secret = []byte(os.Getenv("WEBHOOK_SECRET"))

func signatureOK(body []byte, header string) bool {
	if !strings.HasPrefix(header, "v0=") {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	expected := []byte(hex.EncodeToString(mac.Sum(nil)))
	// Two signatures (comma-separated) while a secret rotation is in its grace period.
	for _, sig := range strings.Split(header[3:], ",") {
		if hmac.Equal(expected, []byte(strings.TrimSpace(sig))) {
			return true
		}
	}
	return false
}

func handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body) // raw bytes, before any JSON parsing
	if err != nil || !signatureOK(body, r.Header.Get("x-outpost-signature")) {
		w.WriteHeader(http.StatusUnauthorized) // a failed attempt: never act on it
		return
	}
	eventID := r.Header.Get("x-outpost-event-id") // the same on every retry: dedupe on it
	topic := r.Header.Get("x-outpost-topic")
	var data any // the event's data
	if err := json.Unmarshal(body, &data); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	printed, _ := json.Marshal(data)
	fmt.Printf("verified %s %s %s\n", eventID, topic, printed)
	w.WriteHeader(http.StatusOK)
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	http.HandleFunc("/", handle)
	if err := http.ListenAndServe("127.0.0.1:"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
