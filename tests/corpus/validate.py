"""Sanity checks for the held-out extraction corpus (not a test of the product).

Run: python tests/corpus/validate.py
"""
import email
import email.policy
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).parent
ITEMS = ("account_email", "identity_verified", "reset_instructed")
DETAILS = {"account_email": {"ambiguous_account_email"},
           "identity_verified": {"negated", "conditional", "question"},
           "reset_instructed": {"negated", "conditional", "question"}}


def decoded_text(msg):
    out = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            try:
                out.append(part.get_content())
            except LookupError:
                out.append(part.get_payload(decode=True).decode("latin-1"))
    return "\n".join(out)


def main():
    data = json.loads((HERE / "expected.json").read_text(encoding="utf-8"))
    errors = []
    assert data["support_address"] == "support@forus.test"
    files = sorted(p.name for p in HERE.glob("*.eml"))
    listed = [c["file"] for c in data["cases"]]
    if sorted(listed) != files or len(set(listed)) != len(listed):
        errors.append("file list mismatch: %s" % (set(files) ^ set(listed)))
    mids = set()
    for c in data["cases"]:
        fn = c["file"]
        raw = (HERE / fn).read_bytes()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for h in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            if msg[h] is None:
                errors.append("%s: missing header %s" % (fn, h))
        mid = msg["Message-ID"]
        if mid in mids:
            errors.append("%s: duplicate Message-ID" % fn)
        mids.add(mid)
        if msg.defects:
            errors.append("%s: defects %s" % (fn, msg.defects))
        text = decoded_text(msg)
        e = c["expected"]
        missing = [k for k in ITEMS if (e[k] is None if k == "account_email" else not e[k])]
        if sorted(missing) != sorted(e["missing"]):
            errors.append("%s: missing %s inconsistent (want %s)" % (fn, e["missing"], missing))
        for k, v in e.get("missing_details", {}).items():
            if k not in e["missing"] or v not in DETAILS[k]:
                errors.append("%s: bad missing_details %s=%s" % (fn, k, v))
        acct = e["account_email"]
        if acct is not None:
            if acct != acct.lower():
                errors.append("%s: account not lower-case" % fn)
            if acct not in text.lower():
                errors.append("%s: account %s not found in decoded text" % (fn, acct))
            frm = msg["From"].addresses[0].addr_spec.lower()
            if acct == frm or acct == data["support_address"]:
                errors.append("%s: account equals sender/support" % fn)
        ref = e["case_reference"]
        if ref is not None and ref not in text:
            errors.append("%s: reference %s not in text" % (fn, ref))
        if c.get("language") not in ("nl", "en"):
            errors.append("%s: language" % fn)
    for err in errors:
        print(err)
    print("%d cases, %d errors" % (len(data["cases"]), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
