// Package privacy finds personal data in tabular data, cleans it, and checks
// k-anonymity, for the ingestion gate (spec.validation.privacy).
//
// Detection is per value and validated, not a regex: card numbers pass Luhn
// and a known issuer prefix, CPF, CNPJ and IBAN their check digits, SSNs the
// area/group/serial rules, phone numbers libphonenumber's metadata. A column
// is flagged by a rule over all its values (see Config), so chance matches
// in an id column do not flag it while a few addresses in free text do.
//
// The flow is two passes over the same bytes: a Scanner observes every row
// and decides which columns hold which personal data; then, for the redact
// and pseudonymize actions, a Transformer built from the flagged columns
// (FlaggedColumns) rewrites each row as it is streamed into storage.
// KAnonymity counts equivalence classes over declared quasi-identifiers.
//
// Findings and results hold column names, detector names, counts and row
// numbers, never a value. Nothing here is safe for concurrent use; give each
// goroutine its own Scanner, Transformer or KAnonymity.
//
// docs/privacy.md is the user-facing description of every detector and rule.
package privacy
