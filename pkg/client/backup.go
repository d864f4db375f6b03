package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Backup is a snapshot of the server's store being downloaded: a bbolt file
// image of exactly Size bytes. A body that ends early fails its Read with
// io.ErrUnexpectedEOF.
type Backup struct {
	Size int64
	Body io.ReadCloser
}

// Backup calls GET /backup and returns once the server has started the
// answer; the caller reads and closes Body. A server on PostgreSQL answers
// an *APIError matching ErrBackupUnsupported (its message names pg_dump).
func (c *Client) Backup(ctx context.Context) (*Backup, error) {
	const path = "/backup"
	resp, err := c.rawGet(ctx, path, "application/octet-stream, application/json", false)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 {
		resp.Body.Close()
		return nil, fmt.Errorf("client: GET %s: status %d without a Content-Length: not a zdps backup answer", path, resp.StatusCode)
	}
	return &Backup{Size: resp.ContentLength, Body: resp.Body}, nil
}
