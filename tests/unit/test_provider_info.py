"""Airflow finds the package through its entry point and shows both connection types."""

from __future__ import annotations

from importlib.metadata import entry_points

from airflow_provider_dune import get_provider_info


def test_entry_point_points_at_get_provider_info():
    (ep,) = [
        e
        for e in entry_points(group="apache_airflow_provider")
        if e.value.startswith("airflow_provider_dune")
    ]
    assert ep.load() is get_provider_info


def test_providers_manager_registers_hooks_links_and_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-dune" in manager.providers
    hooks = manager.hooks
    assert hooks["dune"].hook_class_name == "airflow_provider_dune.hooks.dune.DuneHook"
    assert hooks["maia"].hook_class_name == "airflow_provider_dune.hooks.maia.MaiaHook"
    assert "airflow_provider_dune.links.dune.DuneQueryLink" in manager.extra_links_class_names
    behaviour = manager.field_behaviours["dune"]
    assert behaviour["relabeling"]["password"] == "API key"
    assert "login" in behaviour["hidden_fields"]


def test_every_declared_module_imports():
    import importlib

    info = get_provider_info()
    for kind in ("operators", "sensors", "hooks", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)


def test_the_event_hold_is_a_documented_airflow_setting(monkeypatch):
    from airflow.providers_manager import ProvidersManager

    from airflow_provider_dune.operators.deferral import DEFAULT_EVENT_HOLD, event_hold_seconds

    configs = dict(ProvidersManager().provider_configs)
    option = configs["airflow-provider-dune"]["dune"]["options"]["deferral_event_hold"]
    assert float(option["default"]) == DEFAULT_EVENT_HOLD
    assert "71580" in option["description"]
    monkeypatch.setenv("AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD", "3.5")
    assert event_hold_seconds() == 3.5
    monkeypatch.delenv("AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD")
    assert event_hold_seconds() == DEFAULT_EVENT_HOLD
