-- Health of a Customer, from its observedGeneration and the conditions the
-- controller sets: Ready (the record is valid), Synced (its generation reached
-- every selecting sink), and kstatus' Reconciling and Stalled. A Customer is
-- Progressing only while something will finish by itself; Synced False without
-- Reconciling means the sinks left need a person's change, named in the message.
-- Runs with Lua's base, table and package libraries only, as argocd-cm checks do.
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the controller"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the controller to observe generation " .. generation
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end
local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
local ready = conditions["Ready"]
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.message
  return hs
end
local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message
  return hs
end
local synced = conditions["Synced"]
if synced ~= nil and synced.status == "False" then
  hs.status = "Degraded"
  hs.message = synced.message
  return hs
end
if ready ~= nil and ready.status == "True" and synced ~= nil and synced.status == "True" then
  hs.status = "Healthy"
  hs.message = synced.message
  return hs
end
hs.status = "Progressing"
hs.message = "waiting for the Ready and Synced conditions"
return hs
