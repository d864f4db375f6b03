// Package enrollment holds zdps's domain model: individual enrollments,
// enrollment groups, registration records, linked hubs, shared access
// policies and instance settings, in the JSON wire form of the Azure IoT Hub
// DPS service API (field names and casing exactly as DPS writes them).
//
// Security contract: every value that arrives from a request must pass
// through one of the Decode functions, which decode strictly (unknown fields
// are an error), strip read-only fields (etag, registrationState,
// timestamps) and validate. Nothing else in zdps trusts request JSON.
//
// The package depends on the standard library only.
package enrollment
