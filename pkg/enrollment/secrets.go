package enrollment

// Secret is one field of a document that the store keeps encrypted at rest.
// Field names the value's place in the document (its JSON path); the store
// binds the encrypted value to the document's bucket, key and Field, so it
// cannot be moved to another record or field. Value points into the
// document: the store replaces it with the sealed form while it encodes and
// with the plaintext when it decodes.
type Secret struct {
	Field string
	Value *string
	// Bytes is set instead of Value for a binary secret (its JSON is
	// base64 of the bytes, plaintext or sealed form alike).
	Bytes *[]byte
}

// Secrets of an individual enrollment or a group: its symmetric keys (a
// group's are those devices derive theirs from) and its custom allocation
// webhook URL, which may carry a credential (an Azure Functions URL holds
// its function key in ?code=).
func (s *Spec) Secrets() []Secret {
	return enrollmentSecrets(s.Attestation, s.CustomAllocationDefinition)
}

// Secrets of a shared access policy: both keys (the owner's included).
func (p *SharedAccessPolicy) Secrets() []Secret {
	return []Secret{{Field: "primaryKey", Value: &p.PrimaryKey}, {Field: "secondaryKey", Value: &p.SecondaryKey}}
}

func enrollmentSecrets(a *AttestationMechanism, c *CustomAllocationDefinition) []Secret {
	var out []Secret
	// Keys are sealed whatever the attestation type says, so a key left
	// behind by a type change is not the one value kept in the clear.
	if a != nil && a.SymmetricKey != nil {
		out = append(out,
			Secret{Field: "attestation.symmetricKey.primaryKey", Value: &a.SymmetricKey.PrimaryKey},
			Secret{Field: "attestation.symmetricKey.secondaryKey", Value: &a.SymmetricKey.SecondaryKey})
	}
	if c != nil {
		out = append(out, Secret{Field: "customAllocationDefinition.webhookUrl", Value: &c.WebhookURL})
	}
	return out
}
