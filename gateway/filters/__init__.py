"""The content filter: SSNs, card numbers and operators' patterns kept out of answers and of
what the gateway stores (docs/decisions/0050-output-filtering.md).

`detectors` finds matches; `content` applies a policy (redact, block, off) to answers, streams
and stored texts and counts each filtering event; `modes` holds the policy choices.
"""
