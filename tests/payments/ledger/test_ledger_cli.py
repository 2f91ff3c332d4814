"""`gigql ledger verify` as a real process on the tests' database: clean after postings,
and a damaged balance is reported with a non-zero exit status."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from bson import ObjectId

from documents.payments import ledger_accounts
from documents.payments.ledger import AccountBalance, balance_id
from documents.settings import Settings
from server.cli import LEDGER_PROBLEMS_EXIT
from tests.support.gigql_process import gigql_env, run_gigql
from tests.support.payments.ledger import fund_wallet, usd, withdraw


async def ledger_verify(settings: Settings, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert settings.mongodb_url is not None
    env = gigql_env(
        tmp_path / "data",
        MONGODB_URL=settings.mongodb_url,
        GIGQL_MONGODB_DATABASE=settings.mongodb_database,
    )
    return await asyncio.to_thread(run_gigql, "ledger", "verify", env=env, cwd=tmp_path)


async def test_ledger_verify_is_clean_after_postings(settings: Settings, tmp_path: Path) -> None:
    provider = ObjectId()
    await fund_wallet(provider, usd(5000))
    await withdraw(provider, f"withdrawal:{ObjectId()}", usd(1200))

    result = await ledger_verify(settings, tmp_path)
    assert result.returncode == 0, result.stderr
    # pay, release, withdrawal; funding, escrow, wallet, payout in flight
    assert result.stdout.splitlines() == ["ledger ok: 3 transactions, 4 balances checked"]


async def test_ledger_verify_reports_a_damaged_balance(settings: Settings, tmp_path: Path) -> None:
    provider = ObjectId()
    await fund_wallet(provider, usd(5000))
    wallet = ledger_accounts.wallet(provider)
    await AccountBalance.get_pymongo_collection().update_one(
        {"_id": balance_id(wallet, "USD", 0)}, {"$inc": {"balance": 1}}
    )

    result = await ledger_verify(settings, tmp_path)
    assert result.returncode == LEDGER_PROBLEMS_EXIT, (result.stdout, result.stderr)
    assert result.stdout.splitlines() == [
        "ledger 1 problem(s): 2 transactions, 3 balances checked",
        f"balance_mismatch: {wallet} USD: stored 5001, entries sum to 5000",
    ]
