"""Deliver a rendered issue: plan recipients into stored batches, then send batch by batch.

Glossary: a *batch* is up to N recipients sent in one provider request; a *delivery* is one
recipient of one issue; the *audience* is who may be mailed (`audience.Audience`, provided by the
subscribers package); a *mailer* is the pieces a send is made with (`run.Mailer`, built by digest.core).

Invariants: recipients are frozen into batches before the first request;
a batch moves pending -> submitting -> submitted | failed only by compare-and-set; a batch left in
submitting after a crash is never re-sent by itself.
"""
