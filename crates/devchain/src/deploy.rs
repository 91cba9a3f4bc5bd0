//! Deployment of the MedRec contracts onto an [`Evm`].

use crate::evm::{Evm, EvmError, Outcome};
use alloy::{
    primitives::{Address, Bytes},
    sol_types::SolConstructor,
};
use medrec_contracts::{AccessAnchors, Registrar, Relationships};

/// Where the MedRec contracts live on a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deployment {
    /// The `Registrar` contract.
    pub registrar: Address,
    /// The `Relationships` contract.
    pub relationships: Address,
    /// The `AccessAnchors` contract (deployed after the other two, so that their
    /// addresses do not depend on it).
    pub anchors: Address,
}

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The EVM refused the transaction.
    #[error(transparent)]
    Evm(#[from] EvmError),
    /// The constructor reverted or halted.
    #[error("deploying {contract} failed: {outcome:?}")]
    Failed {
        /// Which contract.
        contract: &'static str,
        /// What happened.
        outcome: Outcome,
    },
}

/// Deploys `Registrar` (with `institutions` certified), `Relationships` and
/// `AccessAnchors`, in that order, from `deployer`; returns their addresses and the gas
/// each deployment used (in the same order).
pub fn deploy_medrec(
    evm: &mut Evm,
    deployer: Address,
    institutions: Vec<Address>,
) -> Result<(Deployment, [u64; 3]), DeployError> {
    let args = Registrar::constructorCall { institutions }.abi_encode();
    let (registrar, registrar_gas) =
        deploy_one(evm, deployer, "Registrar", &Registrar::BYTECODE, &args)?;
    let args = Relationships::constructorCall { registrar_: registrar }.abi_encode();
    let (relationships, relationships_gas) =
        deploy_one(evm, deployer, "Relationships", &Relationships::BYTECODE, &args)?;
    let args = AccessAnchors::constructorCall { registrar_: registrar }.abi_encode();
    let (anchors, anchors_gas) =
        deploy_one(evm, deployer, "AccessAnchors", &AccessAnchors::BYTECODE, &args)?;
    Ok((
        Deployment { registrar, relationships, anchors },
        [registrar_gas, relationships_gas, anchors_gas],
    ))
}

fn deploy_one(
    evm: &mut Evm,
    deployer: Address,
    contract: &'static str,
    code: &Bytes,
    args: &[u8],
) -> Result<(Address, u64), DeployError> {
    let init: Bytes = [code.as_ref(), args].concat().into();
    match evm.deploy(deployer, init)? {
        (Some(address), outcome) => Ok((address, outcome.gas_used())),
        (None, outcome) => Err(DeployError::Failed { contract, outcome }),
    }
}
