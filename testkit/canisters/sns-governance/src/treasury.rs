//! TransferSnsTreasuryFunds from the ICP treasury, as an ICRC-1 transfer on
//! the ledger the test names.

use candid::{CandidType, Deserialize, Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg};
use serde_bytes::ByteBuf;

/// Argument of `transfer_treasury_funds`: TransferSnsTreasuryFunds with
/// `from_treasury = ICP`, plus the ledger to use.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TransferTreasuryFunds {
    /// The ledger holding the treasury (the local ICRC ledger in tests).
    pub ledger: Principal,
    pub to_principal: Principal,
    /// 32 bytes when present.
    pub to_subaccount: Option<ByteBuf>,
    /// Sent as the ICRC-1 memo, 8 bytes big-endian.
    pub memo: Option<u64>,
    pub amount_e8s: u64,
}

impl TransferTreasuryFunds {
    /// The `icrc1_transfer` argument: from the treasury (governance's default
    /// account), the ledger's default fee and no `created_at_time` (the
    /// legacy transfer SNS governance makes has none, so no deduplication).
    pub fn transfer_arg(&self) -> Result<TransferArg, String> {
        let subaccount = match &self.to_subaccount {
            None => None,
            Some(bytes) => Some(
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| format!("to_subaccount must be 32 bytes, not {}", bytes.len()))?,
            ),
        };
        Ok(TransferArg {
            from_subaccount: None,
            to: Account {
                owner: self.to_principal,
                subaccount,
            },
            fee: None,
            created_at_time: None,
            memo: self.memo.map(|m| Memo::from(m.to_be_bytes().to_vec())),
            amount: Nat::from(self.amount_e8s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(to_subaccount: Option<Vec<u8>>) -> TransferTreasuryFunds {
        TransferTreasuryFunds {
            ledger: Principal::from_slice(&[1; 10]),
            to_principal: Principal::from_slice(&[2; 10]),
            to_subaccount: to_subaccount.map(ByteBuf::from),
            memo: Some(0x0102),
            amount_e8s: 5,
        }
    }

    #[test]
    fn memo_is_the_u64_big_endian_and_the_destination_is_kept() {
        let arg = args(Some(vec![9; 32])).transfer_arg().unwrap();
        assert_eq!(arg.memo.unwrap().0.as_slice(), &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(arg.to.subaccount, Some([9; 32]));
        assert_eq!(arg.to.owner, Principal::from_slice(&[2; 10]));
        assert_eq!(arg.amount, Nat::from(5u64));
        assert_eq!(
            (arg.fee, arg.created_at_time, arg.from_subaccount),
            (None, None, None)
        );
    }

    #[test]
    fn a_subaccount_of_the_wrong_length_is_refused() {
        assert!(args(Some(vec![9; 31])).transfer_arg().is_err());
        assert_eq!(args(None).transfer_arg().unwrap().to.subaccount, None);
    }
}
