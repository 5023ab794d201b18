// MesosDrainSteps: how the drain tells Mesos that this machine leaves and comes back.
//
// Two ways, by what the master and agent support (or --mesos-mode):
//  * schedule (every Mesos): a maintenance window starting now puts the machine in
//    DRAINING (frameworks get inverse offers); /machine/down after the containers are
//    stopped; /machine/up (which also takes it out of the schedule) when it is back.
//  * drain-api (Mesos 1.9+, agents with AGENT_DRAINING): DEACTIVATE_AGENT stops new
//    offers at once; DRAIN_AGENT (mark_gone for good) when the containers are stopped;
//    REACTIVATE_AGENT when it is back. Mesos refuses DRAIN_AGENT for machines in the
//    schedule, so the two ways are never mixed for one machine.
// Every step reads the real state first and accepts a state already reached, so a
// driver restarted after a crash can repeat any of them.
#include <algorithm>
#include <cctype>
#include <ctime>

#include "driver/drain_systems_impl.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace {

DrainError from_maintenance(const std::string& what, const MaintenanceError& error) {
  const bool refused = error.kind == MaintenanceError::Kind::kMesos && error.status >= 400 && error.status < 500;
  return {refused ? DrainError::Kind::kRefused : DrainError::Kind::kFailed, "Mesos " + what + ": " + error.message};
}

bool contains(const std::vector<MachineId>& machines, const MachineId& machine) {
  return std::find(machines.begin(), machines.end(), machine) != machines.end();
}

// "1.11.0" -> at least 1.9?
bool has_drain_api(const std::string& version) {
  int major = 0;
  int minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) return false;
  return major > 1 || (major == 1 && minor >= 9);
}

MachineId machine_id(const MesosMachine& machine) { return MachineId{machine.hostname, machine.ip}; }

}  // namespace

Result<MaintenanceStatus, DrainError> MesosDrainSteps::status() {
  auto status = master_->maintenance_status();
  if (!status) return unexpected(drain_error_from(status.error(), "maintenance status"));
  return std::move(*status);
}

Result<std::vector<std::string>, DrainError> MesosDrainSteps::unavailable_hosts() {
  std::vector<std::string> out;
  if (master_ == nullptr) return out;
  auto maintenance = status();
  if (!maintenance) return unexpected(std::move(maintenance).error());
  for (const auto* machines : {&maintenance->draining, &maintenance->down}) {
    for (const MachineId& machine : *machines) out.push_back(machine.hostname);
  }
  auto agents = master_->agents();
  if (!agents) return unexpected(drain_error_from(agents.error(), "GET_AGENTS"));
  for (const MesosAgentInfo& agent : *agents) {
    if (agent.deactivated || agent.drain != MesosAgentInfo::DrainState::kNone) out.push_back(agent.hostname);
  }
  return out;
}

Result<MesosMachine, DrainError> MesosDrainSteps::locate(const std::string& hostname) {
  MesosMachine machine;
  if (master_ == nullptr) return machine;
  auto agents = master_->agents();
  if (!agents) return unexpected(drain_error_from(agents.error(), "GET_AGENTS"));
  const auto agent = std::find_if(agents->begin(), agents->end(),
                                  [&](const MesosAgentInfo& a) { return same_host(a.hostname, hostname); });
  if (agent != agents->end()) {
    machine.hostname = agent->hostname;
    machine.ip = agent->ip;
    machine.agent_id = agent->id;
  } else {
    // A DOWN machine's agent is not registered: find the machine in maintenance.
    auto current = status();
    if (!current) return unexpected(std::move(current).error());
    for (const auto* list : {&current->down, &current->draining}) {
      for (const MachineId& m : *list) {
        if (same_host(m.hostname, hostname)) {
          machine.hostname = m.hostname;
          machine.ip = m.ip;
        }
      }
    }
    if (machine.hostname.empty()) return machine;  // kNone: Mesos does not know it
    machine.mode = MesosMachine::Mode::kSchedule;
    return machine;
  }
  if (options_.mode) {
    machine.mode = *options_.mode;
    return machine;
  }
  auto version = master_->version();
  if (!version) return unexpected(drain_error_from(version.error(), "version"));
  const bool drainable = std::find(agent->capabilities.begin(), agent->capabilities.end(), "AGENT_DRAINING") !=
                         agent->capabilities.end();
  machine.mode = has_drain_api(*version) && drainable ? MesosMachine::Mode::kDrainApi : MesosMachine::Mode::kSchedule;
  return machine;
}

Result<void, DrainError> MesosDrainSteps::announce(const MesosMachine& machine) {
  if (machine.mode == MesosMachine::Mode::kDrainApi) {
    auto done = master_->deactivate_agent(machine.agent_id);
    if (!done) return unexpected(drain_error_from(done.error(), "DEACTIVATE_AGENT " + machine.agent_id));
    log_notice("Mesos agent '" + machine.agent_id + "' deactivated: no new tasks on '" + machine.hostname + "'");
    return {};
  }
  if (machine.mode != MesosMachine::Mode::kSchedule) return {};
  auto current = status();
  if (!current) return unexpected(std::move(current).error());
  const MachineId id = machine_id(machine);
  if (contains(current->draining, id) || contains(current->down, id)) return {};
  const std::int64_t now_ns = static_cast<std::int64_t>(std::time(nullptr)) * 1000000000;
  auto scheduled = scheduler_->schedule({id}, now_ns, static_cast<std::int64_t>(options_.window.count()) * 1000000000);
  if (!scheduled) return unexpected(from_maintenance("schedule " + id.text(), scheduled.error()));
  log_notice("Mesos maintenance window for " + id.text() + " starts now: DRAINING");
  return {};
}

Result<void, DrainError> MesosDrainSteps::take_down(const MesosMachine& machine, bool gone) {
  if (machine.mode == MesosMachine::Mode::kDrainApi) {
    auto done = master_->drain_agent(machine.agent_id, options_.drain_grace, gone);
    if (!done) return unexpected(drain_error_from(done.error(), "DRAIN_AGENT " + machine.agent_id));
    log_notice("Mesos agent '" + machine.agent_id + "' draining" + (gone ? " (marked gone)" : ""));
    return {};
  }
  if (machine.mode != MesosMachine::Mode::kSchedule) return {};
  const MachineId id = machine_id(machine);
  auto current = status();
  if (!current) return unexpected(std::move(current).error());
  if (contains(current->down, id)) return {};
  if (!contains(current->draining, id)) {
    // /machine/down is accepted only from DRAINING: the window first (idempotent).
    if (auto announced = announce(machine); !announced) return announced;
  }
  auto down = master_->machines_down({id});
  if (!down) {
    // A lost answer may have been applied: the state decides.
    auto again = status();
    if (again && contains(again->down, id)) return {};
    return unexpected(drain_error_from(down.error(), "/machine/down " + id.text()));
  }
  log_notice("Mesos machine " + id.text() + " is DOWN");
  return {};
}

Result<void, DrainError> MesosDrainSteps::bring_up(const MesosMachine& machine) {
  if (machine.mode == MesosMachine::Mode::kDrainApi) {
    // Mesos refuses to reactivate an agent that is still DRAINING: wait (bounded) for it
    // to be DRAINED first.
    const auto deadline = std::chrono::steady_clock::now() + options_.drain_settle;
    DeadlineBackoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(1000), deadline);
    for (;;) {
      auto agents = master_->agents();
      if (!agents) return unexpected(drain_error_from(agents.error(), "GET_AGENTS"));
      bool draining = false;
      for (const MesosAgentInfo& agent : *agents) {
        if (!same_host(agent.hostname, machine.hostname) && agent.id != machine.agent_id) continue;
        if (agent.drain == MesosAgentInfo::DrainState::kDraining) {
          draining = true;
          continue;
        }
        if (!agent.deactivated && agent.drain == MesosAgentInfo::DrainState::kNone) continue;
        auto done = master_->reactivate_agent(agent.id);
        if (!done) return unexpected(drain_error_from(done.error(), "REACTIVATE_AGENT " + agent.id));
        log_notice("Mesos agent '" + agent.id + "' reactivated");
      }
      if (!draining) return {};
      if (!backoff.sleep()) {
        return drain_error(DrainError::Kind::kTimedOut, "Mesos agent of '" + machine.hostname + "' is still DRAINING after " +
                                                            std::to_string(options_.drain_settle.count()) +
                                                            " s; it can be reactivated once DRAINED");
      }
    }
  }
  if (machine.mode != MesosMachine::Mode::kSchedule) return {};
  const MachineId id = machine_id(machine);
  auto current = status();
  if (!current) return unexpected(std::move(current).error());
  if (contains(current->down, id)) {
    auto up = master_->machines_up({id});
    if (!up) {
      auto again = status();
      if (!again || contains(again->down, id)) return unexpected(drain_error_from(up.error(), "/machine/up " + id.text()));
    }
    log_notice("Mesos machine " + id.text() + " is UP");
  }
  auto schedule = master_->schedule();
  if (!schedule) return unexpected(drain_error_from(schedule.error(), "maintenance schedule"));
  if (schedule->find(id) != nullptr) {
    auto cancelled = scheduler_->cancel({id});
    if (!cancelled) return unexpected(from_maintenance("cancel window of " + id.text(), cancelled.error()));
    log_notice("Mesos maintenance window of " + id.text() + " cancelled");
  }
  return {};
}

Result<bool, DrainError> MesosDrainSteps::agent_active(const MesosMachine& machine) {
  if (master_ == nullptr) return true;
  auto agents = master_->agents();
  if (!agents) return unexpected(drain_error_from(agents.error(), "GET_AGENTS"));
  return std::any_of(agents->begin(), agents->end(), [&](const MesosAgentInfo& a) {
    return same_host(a.hostname, machine.hostname) && a.active && !a.deactivated &&
           a.drain == MesosAgentInfo::DrainState::kNone;
  });
}

std::vector<std::string> MesosDrainSteps::describe(const MesosMachine& machine, bool gone) const {
  const std::string id = machine_id(machine).text();
  switch (machine.mode) {
    case MesosMachine::Mode::kNone:
      return {master_ == nullptr ? "not configured" : "no agent of this host: nothing to tell"};
    case MesosMachine::Mode::kSchedule:
      return {"maintenance window for " + id + " starting now (" + std::to_string(options_.window.count()) +
                  " s; read-modify-write of the schedule under the etcd lock)",
              "/machine/down " + id + " after the containers stopped", "/machine/up " + id + " when back"};
    case MesosMachine::Mode::kDrainApi:
      return {"DEACTIVATE_AGENT " + machine.agent_id + " (" + id + ")",
              "DRAIN_AGENT " + machine.agent_id + (gone ? " mark_gone" : "") + " after the containers stopped",
              "REACTIVATE_AGENT when back"};
  }
  return {};
}

}  // namespace skopos::driver
