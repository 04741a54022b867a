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
