import BakeoffCore
import BakeoffSimulation

/// Reports of simulated experiments.
public enum Simulated {
    public static func report(_ spec: SimulationSpec, plan: AnalysisPlan? = nil) throws -> Report {
        var aggregator = EventAggregator()
        try Simulator.run(spec) { e in try e.withView { try aggregator.add($0) } }
        var p = plan ?? AnalysisPlan()
        if p.allocation == nil { p.allocation = spec.allocation }
        return try Analysis.run(aggregator.finish(), plan: p)
    }

    public static func spec(control: VariantBehaviour, treatment: VariantBehaviour, users: Int = 3000, seed: UInt64 = 5) -> SimulationSpec {
        var spec = SimulationSpec(allocation: try! Allocation(split: 0.5))
        spec.users = users
        spec.seed = seed
        spec.behaviours = ["control": control, "treatment": treatment]
        return spec
    }
}
