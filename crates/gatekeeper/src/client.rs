//! A client of a gatekeeper, for patients, viewers and providers: it signs requests
//! (EIP-712) or signs in once (Sign-In with Ethereum) and uses the bearer token, fetches
//! pointers and checks their data hash, reads and searches FHIR, reads the access log
//! with its proofs, and, for the provider, enrolls relationships and imports Bundles.
//!
//! Every refusal comes back as [`ClientError::Refused`] with the HTTP status and the
//! OperationOutcome's sentence, so a person sees why.

use crate::{
    audit::{ProofJsonError, wire::ProvenEntry},
    auth::{Request, random_nonce, sign_request},
    enrollment::EnrollmentBody,
    offer::{OfferBody, OfferView},
    pointer::PointerSpec,
    server::DATA_HASH_HEADER,
};
use alloy::{
    primitives::{Address, B256},
    signers::{SignerSync, local::PrivateKeySigner},
    transports::http::reqwest,
};
use medrec_primitives::RelationshipId;
use medrec_store::{audit::Proof, hash::data_hash};
use serde_json::{Value, json};
use std::sync::Mutex;

/// Why a request to a gatekeeper failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gatekeeper could not be reached or the connection failed.
    #[error("the gatekeeper at {url} could not be reached: {reason}")]
    Unreachable {
        /// Its base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The gatekeeper refused or failed the request.
    #[error("the gatekeeper answered {status}: {diagnostics}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OperationOutcome's sentence (or the body when it had none).
        diagnostics: String,
    },
    /// The answer is not what the API promises.
    #[error("the gatekeeper's answer is malformed: {0}")]
    Malformed(String),
    /// The data does not hash to what the gatekeeper (or the chain) says.
    #[error("the data served does not match its hash: expected {expected}, computed {computed}")]
    HashMismatch {
        /// The hash it should have.
        expected: B256,
        /// The hash of what was served.
        computed: B256,
    },
    /// A request could not be signed.
    #[error("the request could not be signed: {0}")]
    Signing(String),
}

impl From<ProofJsonError> for ClientError {
    fn from(e: ProofJsonError) -> Self {
        Self::Malformed(e.to_string())
    }
}

/// A pointer's data as served, with its hash checked against the resources.
#[derive(Debug, Clone, PartialEq)]
pub struct PointerData {
    /// The resources, in the gatekeeper's order.
    pub resources: Vec<Value>,
    /// Their data hash (recomputed here and equal to the gatekeeper's header).
    pub data_hash: B256,
}

impl PointerData {
    /// Checks the data against the hash the chain holds for the pointer.
    pub fn verify(&self, on_chain: B256) -> Result<(), ClientError> {
        if self.data_hash == on_chain {
            Ok(())
        } else {
            Err(ClientError::HashMismatch { expected: on_chain, computed: self.data_hash })
        }
    }
}

/// An access log entry about the requester's records, with its proof once anchored.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The entry as the gatekeeper serves it (see [`crate::audit::entry_json`]).
    pub entry: Value,
    /// The proof that an anchored root covers it (`None` until the next anchor).
    pub proof: Option<Proof>,
}

/// A client of one gatekeeper, acting as one account.
#[derive(Debug)]
pub struct GatekeeperClient {
    http: reqwest::Client,
    base: String,
    gatekeeper: Address,
    chain_id: u64,
    signer: PrivateKeySigner,
    token: Mutex<Option<String>>,
}

impl GatekeeperClient {
    /// A client of the gatekeeper at `base` (e.g. `http://127.0.0.1:8080`), which
    /// serves as `gatekeeper` on chain `chain_id`, signing as `signer`.
    pub fn new(
        base: impl Into<String>,
        gatekeeper: Address,
        chain_id: u64,
        signer: PrivateKeySigner,
    ) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self {
            http: reqwest::Client::new(),
            base,
            gatekeeper,
            chain_id,
            signer,
            token: Mutex::new(None),
        }
    }

    /// The account this client acts as.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() }
    }

    /// Signs in with Ethereum (EIP-4361) for `domain` (the gatekeeper's host and port
    /// as it expects them); later requests use the bearer token instead of a signature
    /// each.
    pub async fn sign_in(&self, domain: &str) -> Result<(), ClientError> {
        let nonce: Value = self.answer(self.http.get(format!("{}/auth/nonce", self.base))).await?;
        let nonce = nonce["nonce"]
            .as_str()
            .ok_or_else(|| ClientError::Malformed("no nonce in /auth/nonce".into()))?;
        let issued = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| ClientError::Signing(e.to_string()))?;
        let text = format!(
            "{domain} wants you to sign in with your Ethereum account:\n{address}\n\nSign in to the MedRec gatekeeper.\n\nURI: {base}/auth/siwe\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\nIssued At: {issued}",
            address = self.signer.address().to_checksum(None),
            base = self.base,
            chain = self.chain_id,
        );
        let signature = self
            .signer
            .sign_message_sync(text.as_bytes())
            .map_err(|e| ClientError::Signing(e.to_string()))?;
        let body = json!({"message": text, "signature": signature.to_string()});
        let token: Value =
            self.answer(self.http.post(format!("{}/auth/siwe", self.base)).json(&body)).await?;
        let token = token["access_token"]
            .as_str()
            .ok_or_else(|| ClientError::Malformed("no access_token from /auth/siwe".into()))?;
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(token.to_owned());
        Ok(())
    }

    /// `method target` with `body`, authenticated by the bearer token when signed in,
    /// else by an EIP-712 signature.
    fn request(
        &self,
        method: &str,
        target: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let url = format!("{}{target}", self.base);
        let method: reqwest::Method =
            method.parse().map_err(|_| ClientError::Signing(format!("bad method {method}")))?;
        let mut req = self.http.request(method.clone(), url);
        let token = self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(token) = token {
            req = req.bearer_auth(token);
        } else {
            let now = crate::auth::unix_now();
            let nonce = random_nonce().map_err(|e| ClientError::Signing(e.to_string()))?;
            let signed = Request::new(method.as_str(), target, &body, now, nonce, self.gatekeeper);
            let headers = sign_request(&self.signer, self.chain_id, &signed)
                .map_err(|e| ClientError::Signing(e.to_string()))?;
            for (name, value) in &headers {
                req = req.header(name.as_str(), value.as_bytes());
            }
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/fhir+json").body(body);
        }
        Ok(req)
    }

    /// Sends `req` and reads a JSON answer, turning refusals into [`ClientError::Refused`].
    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        check(status, &text)
    }

    /// The data of pointer `pointer` of `relationship`, with its hash checked against
    /// the resources served (compare it with the chain with [`PointerData::verify`]).
    pub async fn pointer(
        &self,
        relationship: RelationshipId,
        pointer: u8,
    ) -> Result<PointerData, ClientError> {
        let target = format!("/pointers/{}/{pointer}", relationship.0);
        let resp = self
            .request("GET", &target, Vec::new())?
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let header = resp
            .headers()
            .get(DATA_HASH_HEADER.as_str())
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<B256>().ok());
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        let bundle = check(status, &text)?;
        let resources = entries(&bundle)?;
        let computed =
            B256::from(data_hash(&resources).map_err(|e| ClientError::Malformed(e.to_string()))?);
        let expected = header
            .ok_or_else(|| ClientError::Malformed("the data hash header is missing".into()))?;
        if expected != computed {
            return Err(ClientError::HashMismatch { expected, computed });
        }
        Ok(PointerData { resources, data_hash: computed })
    }

    /// One resource (`None` when it does not exist or is not visible to this account).
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Value>, ClientError> {
        let target = format!("/fhir/{resource_type}/{id}");
        match self.answer(self.request("GET", &target, Vec::new())?).await {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every resource matching `query` (e.g. `category=laboratory`), following the
    /// Bundle's `next` links.
    pub async fn search(
        &self,
        resource_type: &str,
        query: &str,
    ) -> Result<Vec<Value>, ClientError> {
        let mut target = format!("/fhir/{resource_type}?{query}");
        let mut out = Vec::new();
        loop {
            let bundle = self.answer(self.request("GET", &target, Vec::new())?).await?;
            out.extend(entries(&bundle)?);
            let next = bundle["link"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str());
            match next.and_then(|u| u.find("/fhir/").map(|i| u[i..].to_owned())) {
                Some(next) => target = next,
                None => return Ok(out),
            }
        }
    }

    /// The access log entries about this account's records (as a patient) after entry
    /// `after`, with their proofs (check them with [`medrec_store::audit::verify`] and
    /// their anchors on chain with `medrec_chain::anchors::check_anchor`).
    pub async fn audit(&self, after: u64) -> Result<Vec<AuditEntry>, ClientError> {
        let target = format!("/audit?after={after}&limit=500");
        let page = self.answer(self.request("GET", &target, Vec::new())?).await?;
        let list = page["entries"]
            .as_array()
            .ok_or_else(|| ClientError::Malformed("no entries in /audit".into()))?;
        list.iter()
            .map(|e| {
                let proven: ProvenEntry = serde_json::from_value(e.clone())
                    .map_err(|err| ClientError::Malformed(format!("an /audit entry: {err}")))?;
                let proof = proven.proof()?;
                let mut entry = e.clone();
                if let Some(fields) = entry.as_object_mut() {
                    fields.remove("proof");
                }
                Ok(AuditEntry { entry, proof })
            })
            .collect()
    }

    /// The provider tells its gatekeeper what `relationship` serves, with its signed
    /// offer while the patient has not created it on chain.
    pub async fn enroll(
        &self,
        relationship: RelationshipId,
        patient: &str,
        pointers: &[PointerSpec],
        offer: Option<&OfferBody>,
    ) -> Result<(), ClientError> {
        let target = format!("/enrollments/{}", relationship.0);
        let body = EnrollmentBody {
            patient: patient.to_owned(),
            pointers: pointers.to_vec(),
            offer: offer.cloned(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.answer(self.request("PUT", &target, body)?).await.map(|_| ())
    }

    /// The offers this gatekeeper's provider made to the signer's account, not yet on
    /// chain (the signer is a key acting for the account with the decide right). Each
    /// still has to be checked against the directory ([`OfferView::verify`]).
    pub async fn offers(&self) -> Result<Vec<OfferView>, ClientError> {
        let answer = self.answer(self.request("GET", "/offers", Vec::new())?).await?;
        serde_json::from_value(answer).map_err(|e| ClientError::Malformed(e.to_string()))
    }

    /// The provider publishes a bounty query's text (which its policy must allow);
    /// returns the commitment to put on chain with the pointer update that carries it.
    pub async fn publish_bounty(&self, text: &str) -> Result<B256, ClientError> {
        let answer = self
            .answer(self.request("PUT", "/research/queries", text.as_bytes().to_vec())?)
            .await?;
        answer["commitment"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| ClientError::Malformed("no commitment in the answer".into()))
    }

    /// The published text of the bounty query with `commitment`, checked against it
    /// (anyone may ask; [`ClientError::HashMismatch`] when the text does not match).
    pub async fn bounty_text(&self, commitment: B256) -> Result<String, ClientError> {
        let target = format!("/research/queries/{commitment}");
        let answer = self.answer(self.http.get(format!("{}{target}", self.base))).await?;
        let text = answer["query"]
            .as_str()
            .ok_or_else(|| ClientError::Malformed("no query in the answer".into()))?;
        let computed = medrec_research::query::commitment_of_text(text);
        if computed != commitment {
            return Err(ClientError::HashMismatch { expected: commitment, computed });
        }
        Ok(text.to_owned())
    }

    /// The last block the gatekeeper's consent index has applied (public `/readyz`,
    /// read whether or not it is ready).
    pub async fn indexed(&self) -> Result<u64, ClientError> {
        let response =
            self.http.get(format!("{}/readyz", self.base)).send().await.map_err(|e| {
                ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() }
            })?;
        let body: Value =
            response.json().await.map_err(|e| ClientError::Malformed(e.to_string()))?;
        body["indexed"]
            .as_u64()
            .ok_or_else(|| ClientError::Malformed("no indexed block in /readyz".into()))
    }

    /// The provider's research policy (public).
    pub async fn research_policy(&self) -> Result<Value, ClientError> {
        self.answer(self.http.get(format!("{}/research/policy", self.base))).await
    }

    /// Redeems bounty `seq` of `relationship`, owned on chain by this account: the
    /// gatekeeper's answer with the private aggregate (`release`), its `epsilon` and the
    /// budget `spent` so far.
    pub async fn redeem(
        &self,
        relationship: RelationshipId,
        seq: u64,
    ) -> Result<Value, ClientError> {
        let target = format!("/research/redeem/{}/{seq}", relationship.0);
        self.answer(self.request("POST", &target, Vec::new())?).await
    }

    /// The provider imports a `transaction` or `batch` Bundle; returns the response
    /// Bundle.
    pub async fn import(&self, bundle: &Value) -> Result<Value, ClientError> {
        let body = bundle.to_string().into_bytes();
        self.answer(self.request("POST", "/fhir", body)?).await
    }
}

/// The JSON of a successful answer, or the refusal with the OperationOutcome's text.
fn check(status: u16, text: &str) -> Result<Value, ClientError> {
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    };
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let diagnostics = body["issue"][0]["diagnostics"]
        .as_str()
        .map_or_else(|| text.chars().take(300).collect(), str::to_owned);
    Err(ClientError::Refused { status, diagnostics })
}

/// The resources of a Bundle's entries.
fn entries(bundle: &Value) -> Result<Vec<Value>, ClientError> {
    if bundle["resourceType"] != "Bundle" {
        return Err(ClientError::Malformed("expected a Bundle".into()));
    }
    Ok(bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource").cloned())
        .collect())
}
