"""The fleet on one host: ``hybridvoice up --config FLEET.toml`` runs the online service and
every appliance of every site as its own process (``hybridvoice appliance serve``), and
supervises them.

- :mod:`.supervisor`: the sans-IO core (children's states; started, exited, stop in;
  reports, signals and deadlines out);
- :mod:`.children`: its adapter (processes started and signalled by PID on the loop);
- :mod:`.up`: the assembly (the online service, the tenant's sites and users, tokens, lab
  gateways, one settings file per appliance, the table of where everything listens).

The description and its plan (ports, settings per appliance) are
:mod:`hybridvoice.cms.settings_fleet` and :mod:`hybridvoice.cms.fleet_plan`.
"""
