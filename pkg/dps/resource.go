package dps

// RegistrationResource is the resource a device's SAS token signs (its
// sr, before URL encoding): "{idScope}/registrations/{registrationId}".
func RegistrationResource(idScope, registrationID string) string {
	return idScope + "/registrations/" + registrationID
}
