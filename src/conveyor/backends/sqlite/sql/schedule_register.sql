-- schedule_register: a schedule seen for the first time has handled every tick up to :now.
-- in: :name :now
INSERT INTO conveyor_schedules (name, last_tick) VALUES (:name, :now) ON CONFLICT (name) DO NOTHING
