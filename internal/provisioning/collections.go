package provisioning

import "github.com/zdps/zdps/internal/provisioning/operations"

// BucketOperations holds the register operations
// (internal/provisioning/operations keeps them).
const BucketOperations = operations.Bucket
