package report

// GangReport is the account of a run's gangs.
type GangReport struct {
	Gangs int `json:"gangs"`
	// NeverStarted never had MinMembers running by the horizon.
	NeverStarted int `json:"never_started"`
	// PartialGPUHours: GPU-hours of members running while fewer than
	// MinMembers of their gang ran (paid, waiting for the rest);
	// PartialUSD what they cost at their node's price per GPU.
	PartialGPUHours float64 `json:"partial_gpu_hours"`
	PartialUSD      float64 `json:"partial_usd"`
	// PartialHours: time some but fewer than MinMembers members ran,
	// summed over the gangs.
	PartialHours float64 `json:"partial_hours"`
	// StartWaitMinutes: from a started gang's last member's arrival to
	// its start.
	StartWaitMinutes Percentiles `json:"start_wait_minutes"`
	// GroupLaunches and GroupsRefused count the fleet's all-or-nothing
	// group launches of gang attempts (ganglaunch.go): launched whole,
	// refused whole. Stock launches gangs node by node: none.
	GroupLaunches int       `json:"group_launches"`
	GroupsRefused int       `json:"groups_refused"`
	ByGang        []GangRun `json:"by_gang"`
}

// GangRun is one gang's account.
type GangRun struct {
	Name       string `json:"name"`
	Size       int    `json:"size"`
	MinMembers int    `json:"min_members"`
	// StartedHours is when MinMembers ran (hours since the start); nil
	// when the gang never started.
	StartedHours     *float64 `json:"started_hours,omitempty"`
	MaxRunning       int      `json:"running_at_end"`
	PartialHours     float64  `json:"partial_hours"`
	PartialGPUHours  float64  `json:"partial_gpu_hours"`
	PartialUSD       float64  `json:"partial_usd"`
	StartWaitMinutes float64  `json:"start_wait_minutes,omitempty"`
}

// gangRows adds the gang account to the comparison table.
func gangRows(row func(string, func(*Result) float64, string)) {
	g := func(f func(*GangReport) float64) func(*Result) float64 {
		return func(r *Result) float64 {
			if r.Gangs == nil {
				return 0
			}
			return f(r.Gangs)
		}
	}
	row("gangs", g(func(x *GangReport) float64 { return float64(x.Gangs) }), "%.0f")
	row("  gangs never started", g(func(x *GangReport) float64 { return float64(x.NeverStarted) }), "%.0f")
	row("  partial-gang GPU-hours", g(func(x *GangReport) float64 { return x.PartialGPUHours }), "%.1f")
	row("  partial-gang $", g(func(x *GangReport) float64 { return x.PartialUSD }), "%.2f")
	row("  partial-gang hours", g(func(x *GangReport) float64 { return x.PartialHours }), "%.2f")
	row("  gang start wait p50 (min)", g(func(x *GangReport) float64 { return x.StartWaitMinutes.P50 }), "%.1f")
	row("  gang start wait max (min)", g(func(x *GangReport) float64 { return x.StartWaitMinutes.Max }), "%.1f")
	row("  gang group launches", g(func(x *GangReport) float64 { return float64(x.GroupLaunches) }), "%.0f")
	row("  gang groups refused whole", g(func(x *GangReport) float64 { return float64(x.GroupsRefused) }), "%.0f")
}
