"""SMART's Python FHIR client (fhirclient, from PyPI, unmodified) drives a MedRec gatekeeper.

Run by clients.test.mjs with the gatekeeper's FHIR base and bearer tokens from
Sign-In with Ethereum in the environment; the tokens are handed to the library the way
it restores a signed-in client (its saved state: an oauth2 server with an access token).
Prints one line per check and exits non-zero on the first failure.

  FHIR_BASE       the gatekeeper's FHIR base URL ({gatekeeper}/fhir)
  PATIENT_TOKEN   the demo patient's bearer token
  VIEWER_TOKEN    the pharmacist's bearer token (its grant was revoked in the demo)
  OTHER_PATIENT   a Patient id the demo patient may not see
"""

import os
import sys

from fhirclient import client, server
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.observation import Observation
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient

# The library joins paths to its base URL: restored from state, the base keeps the
# trailing slash it always gives itself.
BASE = os.environ["FHIR_BASE"].rstrip("/") + "/"


def signed_in(token):
    """A FHIRClient restored from state: an OAuth2 server that holds `token`."""
    state = {
        "app_id": "medrec-fhir-client-tests",
        "server": {"base_uri": BASE, "auth_type": "oauth2", "auth": {"access_token": token}},
    }
    c = client.FHIRClient(state=state)
    assert c.ready, "the client holds a token"
    return c


def check(what, ok):
    if not ok:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


def refusal(call, exc_type):
    """The OperationOutcome of a refused call, parsed by the library's model."""
    try:
        call()
    except exc_type as e:
        return e.response.status_code, OperationOutcome(e.response.json())
    raise AssertionError(f"expected {exc_type.__name__}, got an answer")


patient_client = signed_in(os.environ["PATIENT_TOKEN"])
srv = patient_client.server

# The CapabilityStatement (read by the library itself, and as a model).
cap = CapabilityStatement.read_from("metadata", srv)
check("CapabilityStatement is FHIR 4.0.1", cap.fhirVersion == "4.0.1")
rest = cap.rest[0]
types = {r.type: r for r in rest.resource}
check("CapabilityStatement lists Patient and Observation", "Patient" in types and "Observation" in types)
check(
    "Observation supports search-type",
    any(i.code == "search-type" for i in types["Observation"].interaction),
)
check(
    "CapabilityStatement says SMART-on-FHIR",
    any(c.code == "SMART-on-FHIR" for s in rest.security.service for c in s.coding),
)

# The patient's own Patient: searched, then read by id.
patients = list(Patient.where(struct={}).perform_resources_iter(srv))
check(f"Patient search finds the patient alone ({len(patients)})", len(patients) == 1)
me = Patient.read(patients[0].id, srv)
check(f"Patient/{me.id} read: {patient_client.human_name(me.name[0])}", me.id == patients[0].id and me.birthDate is not None)

# Observations searched with parameters, pages followed by the library.
labs = list(Observation.where(struct={"category": "laboratory", "_count": "3"}).perform_resources_iter(srv))
check(f"Observation?category=laboratory&_count=3 pages through {len(labs)} results", len(labs) > 3)
check(
    "every result is a laboratory Observation of the patient",
    all(
        any(c.code == "laboratory" for cat in o.category for c in cat.coding)
        and o.subject.reference == f"Patient/{me.id}"
        for o in labs
    ),
)
code = labs[0].code.coding[0]
same = Observation.where(struct={"code": f"{code.system}|{code.code}", "patient": me.id}).perform_iter(srv)
bundle = next(same)
check(
    f"Observation?code={code.system}|{code.code}&patient={me.id}: {bundle.total} of that code",
    isinstance(bundle, Bundle)
    and bundle.total >= 1
    and all(e.resource.code.coding[0].code == code.code for e in bundle.entry),
)

# Refusals: another patient's record, and the pharmacist after the patient revoked.
status, oo = refusal(lambda: Patient.read(os.environ["OTHER_PATIENT"], srv), server.FHIRNotFoundException)
check(f"another patient's record: {status} {oo.issue[0].code}", status == 404 and oo.issue[0].severity == "error")
viewer = signed_in(os.environ["VIEWER_TOKEN"]).server
status, oo = refusal(
    lambda: Observation.where(struct={"category": "laboratory"}).perform_iter(viewer).__next__(),
    server.FHIRPermissionDeniedException,
)
check(f"the pharmacist after revocation: {status} {oo.issue[0].code}: {oo.issue[0].diagnostics}", status == 403 and oo.issue[0].code == "forbidden")
print("python fhirclient: all checks passed", flush=True)
